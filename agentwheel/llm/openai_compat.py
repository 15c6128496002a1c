"""Chat back-end for any OpenAI-compatible `/chat/completions` server (vLLM, SGLang, hosted APIs).

`OpenAIChatModel.chat` takes a batch and sends it concurrently (at most `concurrency`
requests in flight), so a batch of episodes costs about one round trip, not one per
episode. Per-request failures come back as error completions; only configuration errors
(bad key, unknown model or URL) raise, because every other request would fail the same way.

The spec string form is `openai:<model>@<base_url>`, e.g. `openai:qwen3-8b@http://localhost:8000/v1`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email.utils
import json
import os
import random
import re
import ssl
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict
from urllib.parse import urlsplit

import httpx

from agentwheel.core.messages import (
    ChatRequest,
    Completion,
    FinishReason,
    Message,
    SamplingParams,
    ToolCall,
    ToolCallError,
)
from agentwheel.core.task import ToolSpec
from agentwheel.llm.tool_calls import OPEN_TAG, check_call, parse_tool_calls
from agentwheel.llm.types import Renderer

SPEC_PREFIX = "openai:"
# vLLM and SGLang accept any bearer token unless started with --api-key; "EMPTY" is their convention.
PLACEHOLDER_API_KEY = "EMPTY"
MAX_BACKOFF_S = 30.0
# 408 and 409 are what some gateways answer for a request they dropped or raced; safe to resend.
_RETRYABLE_STATUS = {408, 409, 429}
_SPEC_URL_START = re.compile(r"@(?=https?://)", re.IGNORECASE)


class OpenAICompatError(Exception):
    """Base class of the errors this back-end raises."""


class ModelConfigError(OpenAICompatError):
    """The server rejected the configuration itself (credentials, model name, URL).

    Raised instead of returned as error completions because retrying cannot help and
    every other request would fail the same way. The message names the URL and model,
    never the API key.
    """

    def __init__(self, message: str, *, base_url: str, model: str, status: int):
        super().__init__(message)
        self.base_url = base_url
        self.model = model
        self.status = status


class OpenAISpec(TypedDict):
    """The parts of an `openai:<model>@<base_url>` spec string."""

    model: str
    base_url: str


def parse_openai_spec(spec: str) -> OpenAISpec:
    """`openai:<model>@<base_url>` → `{"model": ..., "base_url": ...}`, the keyword
    arguments of `OpenAIChatModel`.

    The split is at the `@` that starts the `http(s)://` URL, so model names that contain
    `@` themselves (`claude-x@20240229`) work. Raises ValueError naming the problem.
    """
    example = "e.g. openai:qwen3-8b@http://localhost:8000/v1"
    if not spec.startswith(SPEC_PREFIX):
        raise ValueError(
            f"not an OpenAI model spec {spec!r}: expected openai:<model>@<base_url>, {example}"
        )
    body = spec.removeprefix(SPEC_PREFIX)
    match = _SPEC_URL_START.search(body)
    if match is None:
        raise ValueError(
            f"model spec {spec!r} has no @<base_url> starting with http:// or https://, {example}"
        )
    model, base_url = body[: match.start()], body[match.end() :]
    if not model or model != model.strip() or any(c.isspace() for c in model):
        raise ValueError(
            f"model spec {spec!r} needs a model name without spaces before '@', {example}"
        )
    return OpenAISpec(model=model, base_url=_checked_base_url(base_url))


def _checked_base_url(base_url: str) -> str:
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError(f"base_url {base_url!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"base_url {base_url!r} must be an http(s) URL with a host, e.g. http://localhost:8000/v1"
        )
    return base_url.rstrip("/")


def wire_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The conversation on the wire. A tool message that answers no call of the assistant
    turn before it (the error reply to a malformed call, which has no id) is sent as a user
    message: OpenAI-compatible servers reject tool messages without a matching call."""
    out: list[dict[str, Any]] = []
    open_ids: set[str] = set()
    for message in messages:
        if message.role == "assistant":
            open_ids = {c.id for c in message.tool_calls}
        if message.role == "tool" and message.tool_call_id not in open_ids:
            out.append({"role": "user", "content": f"[tool error] {message.content}"})
            continue
        out.append(wire_message(message))
    return out


def wire_message(message: Message) -> dict[str, Any]:
    """The message as the OpenAI API wants it: tool-call arguments as JSON strings."""
    out = message.openai_dict()
    for call in out.get("tool_calls", []):
        function = call["function"]
        function["arguments"] = json.dumps(function["arguments"], ensure_ascii=False)
    return out


@dataclass
class ChatStats:
    """Counts over a model's lifetime, for run reports. Safe to update from several threads."""

    requests: int = 0
    succeeded: int = 0
    failures: int = 0
    retries: int = 0
    tool_call_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries_by_reason: dict[str, int] = field(default_factory=dict)
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_requests(self, n: int) -> None:
        with self._lock:
            self.requests += n

    def record_success(self, completion: Completion) -> None:
        with self._lock:
            self.succeeded += 1
            self.tool_call_errors += len(completion.tool_call_errors)
            self.prompt_tokens += completion.prompt_tokens
            self.completion_tokens += completion.completion_tokens

    def record_retry(self, reason: str) -> None:
        with self._lock:
            self.retries += 1
            self.retries_by_reason[reason] = self.retries_by_reason.get(reason, 0) + 1

    def record_failure(self, reason: str) -> None:
        with self._lock:
            self.failures += 1
            self.failures_by_reason[reason] = self.failures_by_reason.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "succeeded": self.succeeded,
                "failures": self.failures,
                "retries": self.retries,
                "tool_call_errors": self.tool_call_errors,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "retries_by_reason": dict(self.retries_by_reason),
                "failures_by_reason": dict(self.failures_by_reason),
            }


@dataclass(frozen=True)
class _Failure:
    """One attempt that produced no completion. `reason` is the stats key."""

    reason: str
    detail: str
    retryable: bool
    retry_after_s: float | None = None


class _ClientSlots:
    """At most `size` exchanges in flight, each on its own single-connection client.

    This is the concurrency bound. One shared httpx pool would do the same, but httpcore
    rescans every connection for every queued request, which costs milliseconds of CPU
    per request at 32+ in flight; a client per slot keeps each exchange O(1). Clients are
    made on first need, so a small batch opens few connections, and kept (with their
    keep-alive connections) for the model's lifetime, so later calls reuse them. Used on
    one event loop only.
    """

    def __init__(self, size: int, new_client: Callable[[], httpx.AsyncClient]):
        self._size = size
        self._new_client = new_client
        self._clients: list[httpx.AsyncClient] = []
        self._free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._free.empty() and len(self._clients) < self._size:
            client = self._new_client()
            self._clients.append(client)
        else:
            client = await self._free.get()
        try:
            yield client
        finally:
            self._free.put_nowait(client)

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()


def _client_factory(api_key: str, timeout_s: float) -> Callable[[], httpx.AsyncClient]:
    """Makes the per-slot clients. A closure, not a method, so that the loop thread that
    owns the clients holds no reference to the model (which can then be collected)."""
    ssl_context: list[ssl.SSLContext] = []

    def new_client() -> httpx.AsyncClient:
        if not ssl_context:
            # Building a context reads the CA bundle (~20 ms); one per loop is enough.
            ssl_context.append(httpx.create_ssl_context())
        return httpx.AsyncClient(
            headers={
                "Authorization": f"Bearer {api_key or PLACEHOLDER_API_KEY}",
                "Content-Type": "application/json",
                "User-Agent": "agentwheel",
            },
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            verify=ssl_context[0],
        )

    return new_client


class _LoopThread:
    """A private event loop running in a daemon thread, with the model's clients on it.

    Every request of a model runs here, whichever thread or loop asked, so connections are
    kept alive across `chat` calls and the concurrency bound holds across callers. `close`
    cancels what is in flight, closes the clients and the loop, and joins the thread.
    """

    def __init__(self, slots: _ClientSlots):
        self.slots = slots
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self._closed = False
        self._close_lock = threading.Lock()
        self.thread = threading.Thread(
            target=_serve_loop, args=(self.loop, slots), name="openai-chat-loop", daemon=True
        )
        self.thread.start()

    def submit(self, coroutine: Any) -> concurrent.futures.Future[Any]:
        try:
            return asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        except RuntimeError:  # the loop was closed meanwhile
            coroutine.close()
            raise OpenAICompatError("the model was closed") from None

    def close(self, timeout_s: float = 10.0) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if os.getpid() != self.pid:
            return  # a forked child: the thread lives in the parent only
        with contextlib.suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout_s)


def _serve_loop(loop: asyncio.AbstractEventLoop, slots: _ClientSlots) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(slots.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class _BadResponse(ValueError):
    """A 2xx body that is not a chat completion."""


class OpenAIChatModel:
    """A `ChatModel` served over the OpenAI chat-completions API.

    `chat` is synchronous for its caller and concurrent inside: the model runs one private
    asyncio loop in a daemon thread, and every batch, from whichever thread (or event
    loop) it comes, runs there with at most `concurrency` requests in flight for the model
    as a whole. Connections are kept alive across calls, so a steady stream of calls pays
    no connection set-up. `chat` may be called from several threads at once, and from
    inside a running loop (it then blocks that loop until done; async callers should
    `await model.achat(...)` instead). `close()` (or leaving a `with` block) closes the
    connections and stops the thread; a model that is dropped or still open at
    interpreter exit is closed then, and a call after `close()` starts afresh.

    Retries with exponential backoff and jitter on 429, 5xx, 408/409, timeouts, connection
    errors and unreadable bodies, honouring `Retry-After` up to `max_retry_after_s`. After
    `max_retries` retries the request comes back as a completion with
    `finish_reason == "error"`. 401/403/404 raise `ModelConfigError`. The API key is read
    once from `$api_key_env` (a placeholder is sent when unset, as local servers accept)
    and never appears in reprs or error messages. `request.prompt_ids` is ignored: this
    back-end has no tokenizer (`renderer` is None), so it always sends messages.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout_s: float = 60,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        extra_body: Mapping[str, Any] | None = None,
        max_retry_after_s: float = 30.0,
    ):
        if not model:
            raise ValueError("model name must not be empty")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be at least 0, got {max_retries}")
        if backoff_s < 0 or max_retry_after_s < 0:
            raise ValueError("backoff_s and max_retry_after_s must not be negative")
        self.model = model
        self.base_url = _checked_base_url(base_url)
        self.name = f"{SPEC_PREFIX}{model}@{self.base_url}"
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.max_retry_after_s = float(max_retry_after_s)
        self.extra_body = dict(extra_body or {})
        self.stats = ChatStats()
        self._api_key = os.environ.get(api_key_env) or ""
        self._url = f"{self.base_url}/chat/completions"
        # Jitter only spreads retry times; it never changes what a completion says.
        self._jitter = random.Random()
        self._lock = threading.Lock()
        self._loop_thread: _LoopThread | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def renderer(self) -> Renderer | None:
        return None

    def __repr__(self) -> str:
        return (
            f"OpenAIChatModel(model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key_env={self.api_key_env!r}, concurrency={self.concurrency})"
        )

    def chat(self, requests: Sequence[ChatRequest], params: SamplingParams) -> list[Completion]:
        """One completion per request, in order; see the class docstring for failures."""
        if not requests:
            return []
        runner = self._runner()
        if threading.current_thread() is runner.thread:
            raise RuntimeError("OpenAIChatModel.chat called on its own loop; await achat instead")
        future = runner.submit(self._chat_batch(runner.slots, requests, params))
        try:
            return self._result(future)
        except BaseException:
            # Interrupted (Ctrl-C): do not leave the batch running for nobody.
            future.cancel()
            raise

    async def achat(
        self, requests: Sequence[ChatRequest], params: SamplingParams
    ) -> list[Completion]:
        """`chat` for callers already inside an event loop (the batch runs on the model's
        own loop; awaiting it does not block the caller's)."""
        if not requests:
            return []
        runner = self._runner()
        if threading.current_thread() is runner.thread:
            return await self._chat_batch(runner.slots, requests, params)
        future = runner.submit(self._chat_batch(runner.slots, requests, params))
        try:
            return await asyncio.wrap_future(future)
        except concurrent.futures.CancelledError:
            if future.cancelled() and not _current_task_cancelling():
                raise OpenAICompatError(
                    "the model was closed while the batch was in flight"
                ) from None
            raise

    def close(self) -> None:
        """Close the connections and stop the model's loop thread. Batches still in flight
        are cancelled. Idempotent; a later call opens new connections."""
        with self._lock:
            finalizer, self._finalizer, self._loop_thread = self._finalizer, None, None
        if finalizer is not None:
            finalizer()

    def __enter__(self) -> OpenAIChatModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _runner(self) -> _LoopThread:
        with self._lock:
            runner = self._loop_thread
            if runner is not None and runner.pid == os.getpid():
                return runner
            if self._finalizer is not None:
                # Forked: the loop thread stayed in the parent, whose exit closes it.
                self._finalizer.detach()
            slots = _ClientSlots(self.concurrency, _client_factory(self._api_key, self.timeout_s))
            runner = self._loop_thread = _LoopThread(slots)
            # Closes the loop when the model is collected, or at interpreter exit (before
            # module teardown, so no "event loop is closed" noise from open transports).
            self._finalizer = weakref.finalize(self, runner.close)
            return runner

    @staticmethod
    def _result(future: concurrent.futures.Future[list[Completion]]) -> list[Completion]:
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise OpenAICompatError("the model was closed while the batch was in flight") from None

    async def _chat_batch(
        self, slots: _ClientSlots, requests: Sequence[ChatRequest], params: SamplingParams
    ) -> list[Completion]:
        """Runs on the loop that owns `slots`."""
        self.stats.add_requests(len(requests))
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._complete(slots, request, params))
                    for request in requests
                ]
        except BaseExceptionGroup as errors:
            # The task group cancelled the rest of the batch; surface the config error alone.
            config_errors = [e for e in errors.exceptions if isinstance(e, ModelConfigError)]
            if config_errors:
                raise config_errors[0] from None
            raise
        return [task.result() for task in tasks]

    def payload(self, request: ChatRequest, params: SamplingParams) -> dict[str, Any]:
        """The JSON body sent for one request; `extra_body` keys are added last and win."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": wire_messages(request.messages),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if request.tools:
            body["tools"] = [tool.openai_schema() for tool in request.tools]
        body.update(self.extra_body)
        return body

    async def _complete(
        self, slots: _ClientSlots, request: ChatRequest, params: SamplingParams
    ) -> Completion:
        try:
            content = json.dumps(self.payload(request, params), ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            self.stats.record_failure("unserialisable_request")
            return self._error_completion(f"request is not JSON-serialisable: {exc}", tries=0)
        attempt = 0
        while True:
            # A slot is held for the HTTP exchange only, so backoff sleeps free it.
            async with slots.slot() as client:
                outcome = await self._attempt(client, content, request.tools)
            if isinstance(outcome, Completion):
                self.stats.record_success(outcome)
                return outcome
            if not outcome.retryable or attempt >= self.max_retries:
                self.stats.record_failure(outcome.reason)
                return self._error_completion(outcome.detail, tries=attempt + 1)
            self.stats.record_retry(outcome.reason)
            await asyncio.sleep(self._retry_delay_s(attempt, outcome.retry_after_s))
            attempt += 1

    async def _attempt(
        self, client: httpx.AsyncClient, content: bytes, tools: Sequence[ToolSpec]
    ) -> Completion | _Failure:
        try:
            # httpx's timeout is per read; this bounds the whole exchange (a trickling body too).
            async with asyncio.timeout(self.timeout_s):
                response = await client.post(self._url, content=content)
        except (TimeoutError, httpx.TimeoutException):
            return _Failure("timeout", f"no response within {self.timeout_s:g}s", retryable=True)
        except httpx.DecodingError as exc:
            return _Failure("invalid_response", f"undecodable response: {exc}", retryable=True)
        except httpx.TransportError as exc:
            detail = f"connection error: {type(exc).__name__}: {self._redact(str(exc))}"
            return _Failure("connection", detail, retryable=True)
        status = response.status_code
        if status in (401, 403, 404):
            raise self._config_error(status, self._server_message(response))
        if status in _RETRYABLE_STATUS or status >= 500:
            return _Failure(
                f"http_{status}",
                f"HTTP {status}: {self._server_message(response)}",
                retryable=True,
                retry_after_s=retry_after_s(response.headers),
            )
        if not 200 <= status < 300:
            # Other 4xx (context too long, bad parameter) concern this request only.
            detail = f"HTTP {status}: {self._server_message(response)}"
            return _Failure(f"http_{status}", detail, retryable=False)
        try:
            return parse_chat_response(response.json(), tools)
        except ValueError as exc:
            # A truncated or garbled body is usually a proxy hiccup: worth another try.
            detail = f"unreadable response body: {self._redact(str(exc))}"
            return _Failure("invalid_response", detail, retryable=True)

    def _retry_delay_s(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        base = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
        # ±50% jitter so a batch that failed together does not retry in lockstep.
        return base * (0.5 + self._jitter.random())

    def _error_completion(self, detail: str, tries: int) -> Completion:
        attempts = f" after {tries} attempt{'s' if tries != 1 else ''}" if tries else ""
        return Completion(
            finish_reason="error", error=f"{self.name}: {self._redact(detail)}{attempts}"
        )

    def _config_error(self, status: int, server_message: str) -> ModelConfigError:
        if status == 404:
            message = (
                f"model {self.model!r} not found at {self.base_url} (HTTP 404: {server_message}); "
                f"GET {self.base_url}/models lists the served models, and base_url usually ends in /v1"
            )
        else:
            key_state = "is set" if self._api_key else "is not set"
            message = (
                f"{self.base_url} rejected the credentials for model {self.model!r} "
                f"(HTTP {status}: {server_message}); ${self.api_key_env} {key_state}"
            )
        return ModelConfigError(
            self._redact(message), base_url=self.base_url, model=self.model, status=status
        )

    def _server_message(self, response: httpx.Response) -> str:
        """The server's own error text (OpenAI `error.message`, FastAPI `detail`, or the body)."""
        text = response.text
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        message: Any = None
        if isinstance(body, dict):
            error = body.get("error")
            message = error.get("message") if isinstance(error, dict) else error
            message = message or body.get("message") or body.get("detail")
        message = str(message) if message else text.strip() or response.reason_phrase
        return self._redact(message[:300])

    def _redact(self, text: str) -> str:
        # Some servers echo the key they rejected; keep it out of anything we report.
        if self._api_key and self._api_key in text:
            return text.replace(self._api_key, "[api key]")
        return text


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def parse_chat_response(body: Any, tools: Sequence[ToolSpec]) -> Completion:
    """A chat-completions response body → Completion. Structured `tool_calls` are validated
    against `tools`; without them, Hermes `<tool_call>` blocks in the content are parsed.
    Bad calls become `ToolCallError`s; a body that is no chat completion raises ValueError."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise _BadResponse(f"no choices[0].message ({type(exc).__name__}: {exc})") from None
    if not isinstance(message, dict) or not isinstance(choice, dict):
        raise _BadResponse("choices[0].message is not an object")
    content = _content_text(message.get("content"))
    calls: list[ToolCall] = []
    errors: list[ToolCallError] = []
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise _BadResponse("message.tool_calls is not a list")
    if raw_calls:
        for index, raw in enumerate(raw_calls):
            result = _check_structured_call(raw, tools, index)
            if isinstance(result, ToolCall):
                calls.append(result)
            else:
                errors.append(result)
    elif OPEN_TAG in content:
        # Servers started without a tool parser return the model's Hermes blocks as text.
        _, calls, errors = parse_tool_calls(content, tools)
    finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
    usage = body.get("usage") if isinstance(body, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    return Completion(
        text=content,
        tool_calls=calls,
        tool_call_errors=errors,
        finish_reason=finish,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
    )


def _check_structured_call(
    raw: Any, tools: Sequence[ToolSpec], index: int
) -> ToolCall | ToolCallError:
    function = raw.get("function") if isinstance(raw, dict) else None
    raw_text = json.dumps(raw if function is None else function, ensure_ascii=False, default=str)
    if not isinstance(raw, dict) or not isinstance(function, dict):
        return ToolCallError(
            kind="missing_name", detail="a tool call needs a function", raw=raw_text
        )
    name = function.get("name")
    if not isinstance(name, str) or not name:
        return ToolCallError(
            kind="missing_name", detail="a tool call needs function.name", raw=raw_text
        )
    call_id = raw.get("id")
    if not isinstance(call_id, str) or not call_id:
        call_id = f"call_{index}"
    arguments = function.get("arguments")
    # check_call reads a blank string as no arguments.
    return check_call(name, "" if arguments is None else arguments, tools, call_id, raw=raw_text)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # Some APIs answer with content parts; the text parts are the reply.
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    raise _BadResponse(f"message.content is {type(content).__name__}, not text")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `Retry-After` in seconds or as
    an HTTP date), or None when it did not say."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if seconds == seconds else None  # NaN says nothing
