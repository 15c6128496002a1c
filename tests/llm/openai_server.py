"""A real OpenAI-compatible HTTP server for tests and benchmarks, bound to 127.0.0.1 only.

It serves `POST /v1/chat/completions` and `GET /v1/models` on an ephemeral port from a
background thread. What each chat request gets back is a `Reply`: first from the
scripted queue (`script=` / `push`), then from `responder(request_json)`. Helpers build
the usual replies: text, tool calls (well-formed or with raw argument strings), HTTP
errors with `Retry-After`, invalid JSON bodies, slow replies. Like vLLM, the server
answers 404 for a model it does not serve and, when given `api_key`, 401 for a wrong
bearer token. Every request is recorded, and so are the peak number in flight and the
number of TCP connections accepted (`connections`).

    with OpenAITestServer(lambda body: text_reply("hi"), latency_s=0.01) as server:
        model = OpenAIChatModel(TEST_MODEL, server.url)
        ...
        assert server.chat_bodies[0]["model"] == TEST_MODEL
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TEST_MODEL = "test-model"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Reply:
    """What the server sends: `body` as JSON, or `raw` bytes verbatim, after `delay_s`;
    with `trickle_s`, the payload goes out one byte at a time, `trickle_s` apart."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    trickle_s: float = 0.0


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or None when the body was empty or not JSON


Responder = Callable[[dict[str, Any]], Reply]


def last_user_message(body: Mapping[str, Any]) -> str:
    """The content of the last user message in a chat request body ('' when none)."""
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def completion_body(
    content: str | None = "",
    *,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
    finish_reason: str = "stop",
    model: str = TEST_MODEL,
    prompt_tokens: int = 7,
    completion_tokens: int | None = None,
) -> dict[str, Any]:
    """A chat.completion response body as the OpenAI API returns it."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [dict(c) for c in tool_calls]
    if completion_tokens is None:
        completion_tokens = len((content or "").split()) + 10 * len(tool_calls or [])
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def text_reply(text: str, *, finish_reason: str = "stop", **body: Any) -> Reply:
    return Reply(body=completion_body(text, finish_reason=finish_reason, **body))


def tool_call_reply(*calls: tuple[str, Mapping[str, Any] | str], content: str = "") -> Reply:
    """Structured tool calls: `(name, arguments)`; a dict is serialised to a JSON string,
    a str is sent verbatim (use it for malformed arguments)."""
    wire = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {
                "name": name,
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
            },
        }
        for i, (name, arguments) in enumerate(calls)
    ]
    return Reply(body=completion_body(content or None, tool_calls=wire, finish_reason="tool_calls"))


def error_reply(
    status: int,
    message: str = "",
    *,
    retry_after: float | str | None = None,
    error_type: str = "server_error",
) -> Reply:
    """An HTTP error with an OpenAI-style `{"error": {...}}` body."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    body = {"error": {"message": message or f"HTTP {status}", "type": error_type, "code": status}}
    return Reply(status=status, body=body, headers=headers)


def invalid_json_reply(status: int = 200) -> Reply:
    """A body that is cut off mid-JSON, as a broken proxy might send."""
    return Reply(status=status, raw=b'{"id": "chatcmpl-test", "choices": [{"message": {"con')


def slow_reply(delay_s: float, reply: Reply | None = None) -> Reply:
    """`reply` (a short text by default) sent only after `delay_s` seconds."""
    return replace(reply or text_reply("slow"), delay_s=delay_s)


def echo_responder(body: dict[str, Any]) -> Reply:
    """The default responder: `echo: <last user message>`."""
    return text_reply(f"echo: {last_user_message(body)}")


class OpenAITestServer:
    """A threaded HTTP server speaking enough of the OpenAI API for tests and benchmarks.

    `latency_s` is added to every chat request (inside the in-flight window, so a client's
    concurrency shows in `max_in_flight`). `models=None` accepts any model name.
    Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        responder: Responder = echo_responder,
        *,
        script: Iterable[Reply] = (),
        latency_s: float = 0.0,
        models: Sequence[str] | None = (TEST_MODEL,),
        api_key: str | None = None,
    ):
        self.responder = responder
        self.latency_s = latency_s
        self.models = None if models is None else list(models)
        self.api_key = api_key
        self.received: list[ReceivedRequest] = []
        self.responder_errors: list[BaseException] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0
        self._script: collections.deque[Reply] = collections.deque(script)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> OpenAITestServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer((LOOPBACK, 0), _Handler, app=self)
        host = self._httpd.server_address[0]
        assert host == LOOPBACK, f"test server must bind loopback only, bound {host!r}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="openai-test-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in latency or slow replies
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> OpenAITestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what tests use ----------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server is not running"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, ending in /v1, as OpenAI clients take it."""
        return f"http://{LOOPBACK}:{self.port}/v1"

    def spec(self, model: str = TEST_MODEL) -> str:
        """The `openai:<model>@<url>` spec string for this server."""
        return f"openai:{model}@{self.url}"

    def push(self, *replies: Reply) -> None:
        """Queue replies; each chat request takes the next before the responder is asked."""
        with self._lock:
            self._script.extend(replies)

    @property
    def chat_bodies(self) -> list[Any]:
        """The JSON bodies of the chat-completion requests received, in arrival order."""
        with self._lock:
            return [r.body for r in self.received if r.path.endswith("/chat/completions")]

    # -- request handling (called on handler threads) -----------------------------------

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.received.append(request)

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _chat_reply(self, request: ReceivedRequest) -> Reply:
        if self.api_key is not None and request.headers.get("authorization") != (
            f"Bearer {self.api_key}"
        ):
            return error_reply(
                401, "Incorrect API key provided.", error_type="invalid_request_error"
            )
        body = request.body
        if not isinstance(body, dict):
            return error_reply(
                400, "request body is not a JSON object", error_type="BadRequestError"
            )
        model = body.get("model")
        if self.models is not None and model not in self.models:
            return error_reply(
                404, f"The model `{model}` does not exist.", error_type="NotFoundError"
            )
        self._sleep(self.latency_s)
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            return scripted
        try:
            return self.responder(body)
        except Exception as exc:  # a test's responder bug must show, not hang the client
            with self._lock:
                self.responder_errors.append(exc)
            return error_reply(500, f"responder failed: {exc!r}")

    def _models_reply(self) -> Reply:
        data = [
            {"id": m, "object": "model", "owned_by": "agentwheel-test"} for m in self.models or []
        ]
        return Reply(body={"object": "list", "data": data})


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default listen backlog of 5 drops connects when a client opens dozens at once,
    # and each dropped SYN costs the client a 1 s retransmit.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], handler: type[_Handler], app: OpenAITestServer):
        self.app = app
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, as real servers do (matters for throughput tests).
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections are dropped after this, so handler threads always end.
    timeout = 10
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
    # meets the client's delayed ACK and every reply stalls ~40 ms.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.app._connected()

    def do_GET(self) -> None:
        request = self._read_request()
        app = self.server.app
        app._record(request)
        if request.path.rstrip("/") == "/v1/models":
            self._send(app._models_reply())
        else:
            self._send(error_reply(404, f"no route {request.path}", error_type="NotFoundError"))

    def do_POST(self) -> None:
        request = self._read_request()
        app = self.server.app
        app._record(request)
        if request.path.rstrip("/") != "/v1/chat/completions":
            self._send(error_reply(404, f"no route {request.path}", error_type="NotFoundError"))
            return
        app._enter()
        try:
            reply = app._chat_reply(request)
            app._sleep(reply.delay_s)
            self._send(reply)
        finally:
            app._leave()

    def _read_request(self) -> ReceivedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        return ReceivedRequest(method=self.command, path=self.path, headers=headers, body=body)

    def _send(self, reply: Reply) -> None:
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if reply.trickle_s > 0:
                self._trickle(payload, reply.trickle_s)
            else:
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout fired during a slow reply); nothing to send to.
            self.close_connection = True

    def _trickle(self, payload: bytes, every_s: float) -> None:
        for i in range(len(payload)):
            self.wfile.write(payload[i : i + 1])
            self.wfile.flush()
            if self.server.app._stopping.wait(every_s):
                return

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean
