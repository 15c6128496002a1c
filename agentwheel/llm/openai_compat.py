"""Chat back-end for any OpenAI-compatible `/chat/completions` server (vLLM, SGLang, hosted APIs).

`OpenAIChatModel.chat` takes a batch and sends it concurrently (at most `concurrency`
requests in flight), so a batch of episodes costs about one round trip, not one per
episode. The `openai` SDK does the transport, retries, backoff and timeouts
(`openai_client`); requests and replies are built and read by `openai_wire`. Per-request
failures come back as error completions; only configuration errors (bad key, unknown
model or URL) raise, because every other request would fail the same way.

The spec string form is `openai:<model>@<base_url>`, e.g. `openai:qwen3-8b@http://localhost:8000/v1`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict
from urllib.parse import urlsplit

from agentwheel.core.messages import ChatRequest, Completion, SamplingParams
from agentwheel.llm.openai_client import ChatClient, Exchange
from agentwheel.llm.openai_wire import chat_body, parse_chat_response
from agentwheel.llm.types import Renderer

SPEC_PREFIX = "openai:"
# vLLM and SGLang accept any bearer token unless started with --api-key; "EMPTY" is their convention.
PLACEHOLDER_API_KEY = "EMPTY"
# What the server answers when the credentials or the model name are wrong: no retry helps.
CONFIG_ERROR_STATUS = (401, 403, 404)
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

    def record_retries(self, reasons: Sequence[str]) -> None:
        with self._lock:
            self.retries += len(reasons)
            for reason in reasons:
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


class _LoopThread:
    """A private event loop running in a daemon thread, with the model's SDK client on it.

    Every request of a model runs here, whichever thread or loop asked, so connections are
    kept alive across `chat` calls and the concurrency bound holds across callers. `close`
    cancels what is in flight, closes the client and the loop, and joins the thread.
    """

    def __init__(self, client: ChatClient):
        self.client = client
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self._closed = False
        self._close_lock = threading.Lock()
        self.thread = threading.Thread(
            target=_serve_loop, args=(self.loop, client), name="openai-chat-loop", daemon=True
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


def _serve_loop(loop: asyncio.AbstractEventLoop, client: ChatClient) -> None:
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
            loop.run_until_complete(client.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class OpenAIChatModel:
    """A `ChatModel` served over the OpenAI chat-completions API.

    `chat` is synchronous for its caller and concurrent inside: the model runs one private
    asyncio loop in a daemon thread with one `openai.AsyncOpenAI` client on it, and every
    batch, from whichever thread (or event loop) it comes, runs there with at most
    `concurrency` requests in flight for the model as a whole. Connections are kept alive
    across calls, so a steady stream of calls pays no connection set-up. `chat` may be
    called from several threads at once, and from inside a running loop (it then blocks
    that loop until done; async callers should `await model.achat(...)` instead).
    `close()` (or leaving a `with` block) closes the connections and stops the thread; a
    model that is dropped or still open at interpreter exit is closed then, and a call
    after `close()` starts afresh.

    The SDK retries 429, 5xx, 408/409, timeouts and connection errors up to `max_retries`
    times with exponential backoff and jitter, waiting what `Retry-After` asks (up to the
    SDK's limit of two minutes; a server that asks for longer gets no retry). `timeout_s`
    bounds each attempt as a whole, from connect to the last byte of the reply, and a
    reply over `MAX_REPLY_BYTES` decompressed is refused. A request that still fails, or
    whose body is not a chat completion, comes back as a completion with
    `finish_reason == "error"` and `error` saying why. 401/403/404 raise
    `ModelConfigError`. The API key is read once from `$api_key_env` (a placeholder is
    sent when unset, as local servers accept) and never appears in reprs or error
    messages. `request.prompt_ids` is ignored: this back-end has no tokenizer (`renderer`
    is None), so it always sends messages.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout_s: float = 60,
        max_retries: int = 4,
        extra_body: Mapping[str, Any] | None = None,
    ):
        if not model:
            raise ValueError("model name must not be empty")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be at least 0, got {max_retries}")
        self.model = model
        self.base_url = _checked_base_url(base_url)
        self.name = f"{SPEC_PREFIX}{model}@{self.base_url}"
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.extra_body = dict(extra_body or {})
        self.stats = ChatStats()
        self._api_key = os.environ.get(api_key_env) or ""
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
        future = runner.submit(self._chat_batch(runner.client, requests, params))
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
            return await self._chat_batch(runner.client, requests, params)
        future = runner.submit(self._chat_batch(runner.client, requests, params))
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

    def payload(self, request: ChatRequest, params: SamplingParams) -> dict[str, Any]:
        """The JSON body sent for one request; `extra_body` keys are added last and win."""
        return chat_body(self.model, request, params, self.extra_body)

    def _runner(self) -> _LoopThread:
        with self._lock:
            runner = self._loop_thread
            if runner is not None and runner.pid == os.getpid():
                return runner
            if self._finalizer is not None:
                # Forked: the loop thread stayed in the parent, whose exit closes it.
                self._finalizer.detach()
            client = ChatClient(
                base_url=self.base_url,
                api_key=self._api_key or PLACEHOLDER_API_KEY,
                timeout_s=self.timeout_s,
                max_retries=self.max_retries,
                concurrency=self.concurrency,
            )
            runner = self._loop_thread = _LoopThread(client)
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
        self, client: ChatClient, requests: Sequence[ChatRequest], params: SamplingParams
    ) -> list[Completion]:
        """Runs on the loop that owns `client`."""
        self.stats.add_requests(len(requests))
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._complete(client, request, params))
                    for request in requests
                ]
        except BaseExceptionGroup as errors:
            # The task group cancelled the rest of the batch; surface the config error alone.
            config_errors = [e for e in errors.exceptions if isinstance(e, ModelConfigError)]
            if config_errors:
                raise config_errors[0] from None
            raise
        return [task.result() for task in tasks]

    async def _complete(
        self, client: ChatClient, request: ChatRequest, params: SamplingParams
    ) -> Completion:
        try:
            body = json.dumps(self.payload(request, params), ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            self.stats.record_failure("unserialisable_request")
            return self._error_completion(f"request is not JSON-serialisable: {exc}", tries=0)
        exchange = await client.post_chat(body)
        self.stats.record_retries(exchange.retried)
        return self._completion(exchange, request)

    def _completion(self, exchange: Exchange, request: ChatRequest) -> Completion:
        failure = exchange.failure
        if failure is None:
            try:
                completion = parse_chat_response(exchange.body, request.tools)
            except ValueError as exc:
                self.stats.record_failure("invalid_response")
                detail = f"unreadable response body: {exc}"
                return self._error_completion(detail, tries=exchange.attempts)
            self.stats.record_success(completion)
            return completion
        if failure.status in CONFIG_ERROR_STATUS:
            raise self._config_error(failure.status, failure.detail)
        self.stats.record_failure(failure.reason)
        return self._error_completion(failure.detail, tries=exchange.attempts)

    def _error_completion(self, detail: str, tries: int) -> Completion:
        attempts = f" after {tries} attempt{'s' if tries != 1 else ''}" if tries else ""
        return Completion(
            finish_reason="error", error=f"{self.name}: {self._redact(detail)}{attempts}"
        )

    def _config_error(self, status: int, detail: str) -> ModelConfigError:
        if status == 404:
            message = (
                f"model {self.model!r} not found at {self.base_url} ({detail}); "
                f"GET {self.base_url}/models lists the served models, and base_url usually ends in /v1"
            )
        else:
            key_state = "is set" if self._api_key else "is not set"
            message = (
                f"{self.base_url} rejected the credentials for model {self.model!r} "
                f"({detail}); ${self.api_key_env} {key_state}"
            )
        return ModelConfigError(
            self._redact(message), base_url=self.base_url, model=self.model, status=status
        )

    def _redact(self, text: str) -> str:
        # Some servers echo the key they rejected; keep it out of anything we report.
        if self._api_key and self._api_key in text:
            return text.replace(self._api_key, "[api key]")
        return text


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
