"""One model's `openai.AsyncOpenAI` client and what each request it sends comes to.

The SDK does the transport: connections, and retries (`max_retries`) on 429, 5xx,
408/409, timeouts and connection errors, with exponential backoff and jitter, waiting
what a `Retry-After` header asks for. This module adds what the SDK leaves to its caller:
a bound on requests in flight; a deadline on each HTTP attempt as a whole (httpx's
timeouts bound each read, so a server that trickles a byte at a time never trips them);
a cap on the reply body after decompression (a small gzip body can inflate to
gigabytes); the reason every retried attempt failed (the SDK keeps no such count; run
reports show it); and the mapping of the SDK's exceptions to a typed `Exchange` instead
of an exception.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from dataclasses import dataclass
from typing import Any

import httpx2
import openai

# The attempt log of the request the current asyncio task is sending. The SDK sends from
# the task that called it and passes nothing of ours down to the HTTP client, so the
# client finds the log here.
_ATTEMPT_LOG: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "agentwheel_openai_attempt_log", default=None
)
SUCCESS = "ok"
# A chat reply is kilobytes; this is room for the longest context with logprobs.
MAX_REPLY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class RequestFailure:
    """Why a request got no usable response. `reason` is the stats key (`http_<status>`,
    `timeout`, `connection`, `invalid_response`); `detail` is for people and may still
    contain what the server echoed (redact before showing)."""

    reason: str
    detail: str
    status: int | None = None


@dataclass(frozen=True)
class Exchange:
    """One request after the SDK's retries: the response JSON or a failure, how many HTTP
    attempts it took, and why each attempt that was retried failed, in order."""

    body: Any = None
    failure: RequestFailure | None = None
    attempts: int = 0
    retried: tuple[str, ...] = ()


class ChatClient:
    """The SDK client of one model, used on one event loop (the model's), with at most
    `concurrency` requests in flight. A request keeps its slot through the SDK's retries
    and backoff, so a rate-limited server is not sent more while it asks us to wait."""

    def __init__(
        self, *, base_url: str, api_key: str, timeout_s: float, max_retries: int, concurrency: int
    ):
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(concurrency)
        # The SDK's own HTTP stack, httpx2, with at most one connection per slot, kept
        # alive across calls. Not the older httpx: its pool rescans every connection for
        # every request, milliseconds of CPU per request at 32 in flight.
        limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        http_client = _AttemptLoggingClient(
            deadline_s=timeout_s, timeout=timeout_s, limits=limits, follow_redirects=True
        )
        self._sdk = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=max_retries,
            http_client=http_client,
        )

    async def post_chat(self, body: bytes) -> Exchange:
        """POST `body` (JSON) to `/chat/completions` and parse the reply as JSON; never
        raises for what the server or the network did."""
        log: list[str] = []
        token = _ATTEMPT_LOG.set(log)
        try:
            async with self._slots:
                response = await self._sdk.post(
                    "/chat/completions", content=body, cast_to=httpx2.Response
                )
            failure = None
        except openai.APIStatusError as exc:
            message = server_message(exc.response.text, exc.response.reason_phrase)
            detail = f"HTTP {exc.status_code}: {message}"
            failure = RequestFailure(f"http_{exc.status_code}", detail, exc.status_code)
        except openai.APITimeoutError:
            failure = RequestFailure("timeout", f"no response within {self.timeout_s:g}s")
        except openai.APIConnectionError as exc:
            failure = _connection_failure(exc.__cause__ or exc)
        finally:
            _ATTEMPT_LOG.reset(token)
        retried = tuple(log[:-1])
        if failure is not None:
            return Exchange(failure=failure, attempts=len(log), retried=retried)
        try:
            parsed = json.loads(response.content)
        except ValueError as exc:
            detail = f"unreadable response body: {exc}"
            failure = RequestFailure("invalid_response", detail, response.status_code)
            return Exchange(failure=failure, attempts=len(log), retried=retried)
        return Exchange(body=parsed, attempts=len(log), retried=retried)

    async def aclose(self) -> None:
        await self._sdk.close()


class ReplyTooLarge(httpx2.DecodingError):
    """A reply body past `MAX_REPLY_BYTES` once decompressed."""


class _AttemptLoggingClient(httpx2.AsyncClient):
    """Sends each HTTP attempt within `deadline_s` from the first byte out to the last
    byte in, reads the body with a cap on its decompressed size, and notes in the current
    request's attempt log how the attempt ended. The SDK sends every attempt through
    `send`, so a body cut off, too slow or too large is noted here too."""

    def __init__(self, *, deadline_s: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.deadline_s = deadline_s

    async def send(
        self, request: httpx2.Request, *, stream: bool = False, **kwargs: Any
    ) -> httpx2.Response:
        log = _ATTEMPT_LOG.get()
        try:
            response = await self._send_within_deadline(request, stream, **kwargs)
        except httpx2.RequestError as exc:
            if log is not None:
                log.append(_transport_reason(exc))
            raise
        if log is not None:
            status = response.status_code
            log.append(SUCCESS if status < 400 else f"http_{status}")
        return response

    async def _send_within_deadline(
        self, request: httpx2.Request, stream: bool, **kwargs: Any
    ) -> httpx2.Response:
        try:
            async with asyncio.timeout(self.deadline_s):
                response = await super().send(request, stream=True, **kwargs)
                if not stream:
                    await _read_capped(response, MAX_REPLY_BYTES)
        except TimeoutError:
            message = f"no complete response within {self.deadline_s:g}s"
            raise httpx2.ReadTimeout(message, request=request) from None
        return response


async def _read_capped(response: httpx2.Response, limit: int) -> None:
    """Read `response`'s body, decompressed, into `response.content`; raise
    `ReplyTooLarge` as soon as it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    try:
        async for part in response.aiter_bytes():
            size += len(part)
            if size > limit:
                raise ReplyTooLarge(
                    f"reply body over {limit:,} bytes decompressed", request=response.request
                )
            parts.append(part)
    finally:
        await response.aclose()
    response._content = b"".join(parts)


def _transport_reason(exc: BaseException) -> str:
    if isinstance(exc, httpx2.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx2.DecodingError):
        return "invalid_response"
    return "connection"


def _connection_failure(cause: BaseException) -> RequestFailure:
    reason = _transport_reason(cause)
    if reason == "invalid_response":
        return RequestFailure(reason, f"undecodable response: {cause}")
    return RequestFailure(reason, f"connection error: {type(cause).__name__}: {cause}")


def server_message(text: str, reason_phrase: str) -> str:
    """The server's own error text from an error body: OpenAI's `error.message`, FastAPI's
    `detail`, or the body itself (the reason phrase when empty), cut to 300 characters."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        message = message or body.get("message") or body.get("detail")
    message = str(message) if message else text.strip() or reason_phrase
    return message[:300]
