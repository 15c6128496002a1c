"""The HTTP transport: the standard library's threading HTTP server, one thread per
connection, keep-alive (HTTP/1.1), JSON in and out.

Every failure a request can cause is answered with an OpenAI-style error body: 400 for a
body that is not JSON or not a valid request, 404 for an unknown path or model, 405, 413
for a body over `MAX_BODY_BYTES`, 500 for a model failure. None of them stops the server.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agentwheel.llm.server.schema import APIError
from agentwheel.llm.server.service import ChatService

MAX_BODY_BYTES = 32 * 1024 * 1024


class _Listener(ThreadingHTTPServer):
    # The standard library's backlog of 5 resets connections when a burst of clients
    # (BFCL's threads, 32 concurrent requests) arrives faster than they are accepted.
    request_queue_size = 256


class OpenAIServer:
    """`service` on `host:port` (port 0: an ephemeral one, see `port`).

    `start()` serves from a background thread (tests, benchmarks); `serve_forever()`
    blocks (the CLI). Use as a context manager to stop it and its batcher at the end.
    """

    def __init__(
        self, service: ChatService, host: str = "127.0.0.1", port: int = 8000, log: bool = False
    ):
        self.service = service
        handler = type("Handler", (_Handler,), {"service": service, "log_requests": log})
        self.httpd = _Listener((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The URL OpenAI clients take as `base_url` (ends in /v1)."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="openai-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever()
        finally:
            self.close()

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()
        self.service.close()

    def __enter__(self) -> OpenAIServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    service: ChatService
    log_requests: bool = False

    def do_GET(self) -> None:
        path = self._path()
        if path == "/v1/models":
            self._answer(lambda: self.service.models())
        elif path.startswith("/v1/models/"):
            name = path.removeprefix("/v1/models/")
            self._answer(lambda: self.service.model(name))
        elif path == "/health":
            self._send(200, {"status": "ok"})
        else:
            self._not_found(path)

    def do_POST(self) -> None:
        path = self._path()
        routes: dict[str, Callable[[Any], dict[str, Any]]] = {
            "/v1/chat/completions": self.service.chat,
            "/v1/completions": self.service.complete,
        }
        try:
            body = self._json_body()
        except APIError as error:
            self._send(error.status, error.body(), close=error.status == 413)
            return
        route = routes.get(path)
        if route is None:
            self._not_found(path)
            return
        self._answer(lambda: route(body))

    def do_PUT(self) -> None:
        self._method_not_allowed()

    def do_DELETE(self) -> None:
        self._method_not_allowed()

    def do_PATCH(self) -> None:
        self._method_not_allowed()

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def _json_body(self) -> Any:
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header) if length_header is not None else 0
        except ValueError:
            raise APIError(400, f"bad Content-Length {length_header!r}") from None
        if length < 0:
            raise APIError(400, f"bad Content-Length {length_header!r}")
        if length > MAX_BODY_BYTES:
            raise APIError(413, f"the body is {length} bytes; the limit is {MAX_BODY_BYTES}")
        data = self.rfile.read(length)
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise APIError(400, f"the body is not valid JSON: {exc}") from None

    def _answer(self, reply: Callable[[], dict[str, Any]]) -> None:
        try:
            body = reply()
        except APIError as error:
            self._send(error.status, error.body())
        except (
            Exception
        ) as exc:  # a bug or a model failure: this request's 500, not the server's end
            traceback.print_exc(file=sys.stderr)
            internal = APIError(500, f"internal error: {exc!r}", kind="server_error")
            self._send(500, internal.body())
        else:
            self._send(200, body)

    def _not_found(self, path: str) -> None:
        error = APIError(404, f"no route {self.command} {path}", code="not_found")
        self._send(404, error.body())

    def _method_not_allowed(self) -> None:
        error = APIError(405, f"method {self.command} is not allowed", code="method_not_allowed")
        self._send(405, error.body())

    def _send(self, status: int, body: dict[str, Any], close: bool = False) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if self.log_requests:
            super().log_message(format, *args)
