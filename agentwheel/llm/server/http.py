"""The HTTP transport: an asyncio loop that reads requests, a bounded pool of worker
threads that answers them, keep-alive (HTTP/1.1), JSON in and out.

What a client can hold is bounded: a connection waits at most `request_deadline_s` for
its next request and gets as long again to send it whole (a client that trickles its
headers or body gets a 408 and the connection is closed); a body over `MAX_BODY_BYTES`
is refused from its Content-Length before it is read; at most `max_connections` are
open at once; a connection costs a coroutine, not a thread, so half-sent requests never
starve the workers, of which there are `workers`.

Every failure a request can cause is answered with an OpenAI-style error body: 400 for a
body that is not JSON (however deep its nesting or long its numbers) or not a valid
request, 404 for an unknown path or model, 405, 408, 413, 431, 500 for a model failure,
503 past the connection limit. None of them stops the server.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentwheel.llm.server.http_wire import (
    MAX_HEADER_BYTES,
    HttpError,
    HttpRequest,
    read_request,
    response_bytes,
)
from agentwheel.llm.server.schema import APIError
from agentwheel.llm.server.service import ChatService

# A chat request with the longest context we serve is well under a megabyte.
MAX_BODY_BYTES = 8 * 1024 * 1024
REQUEST_DEADLINE_S = 30.0
MAX_CONNECTIONS = 1024
# The backlog of connections not yet accepted: a burst of clients (BFCL's threads, 32
# concurrent requests) must not be reset.
BACKLOG = 256


class OpenAIServer:
    """`service` on `host:port` (port 0: an ephemeral one, see `port`).

    `start()` serves from a background thread (tests, benchmarks); `serve_forever()`
    blocks (the CLI). Use as a context manager to stop it and its batcher at the end.
    `workers` defaults to twice the service's batch size (at least 16), so a full batch
    can gather while the previous one runs.
    """

    def __init__(
        self,
        service: ChatService,
        host: str = "127.0.0.1",
        port: int = 8000,
        log: bool = False,
        *,
        request_deadline_s: float = REQUEST_DEADLINE_S,
        workers: int | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ):
        self.service = service
        self.log = log
        self.request_deadline_s = request_deadline_s
        self.max_connections = max_connections
        self.open_connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._socket = _listening_socket(host, port)
        workers = workers or max(16, 2 * service.batcher.max_batch_size)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-worker")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def host(self) -> str:
        return str(self._socket.getsockname()[0])

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        """The URL OpenAI clients take as `base_url` (ends in /v1)."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> OpenAIServer:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(ready),), name="openai-server", daemon=True
        )
        self._thread.start()
        ready.wait()
        return self

    def serve_forever(self) -> None:
        try:
            asyncio.run(self._serve(None))
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join()
        self._socket.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.service.close()

    def __enter__(self) -> OpenAIServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The event loop ----------------------------------------------------------------------

    async def _serve(self, ready: threading.Event | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(
            self._connection, sock=self._socket, limit=MAX_HEADER_BYTES
        )
        if ready is not None:
            ready.set()
        async with server:
            await self._stop.wait()
            for writer in list(self._writers):  # keep-alive clients must not hold the stop
                writer.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open_connections >= self.max_connections:
            busy = APIError(503, "too many open connections; retry later", kind="server_error")
            await self._write(writer, 503, busy.body(), close=True)
            writer.close()
            return
        self.open_connections += 1
        self._writers.add(writer)
        try:
            while await self._exchange(reader, writer):
                pass
        except ConnectionError:
            pass  # the client went away; nothing to answer
        finally:
            self.open_connections -= 1
            self._writers.discard(writer)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; whether the connection stays open."""
        try:
            async with asyncio.timeout(self.request_deadline_s):
                first = await reader.read(1)
        except TimeoutError:
            return False  # idle past the deadline: close without a word, as servers do
        if not first:
            return False
        try:
            async with asyncio.timeout(self.request_deadline_s):
                request = await read_request(first, reader, writer, MAX_BODY_BYTES)
        except TimeoutError:
            late = APIError(
                408, f"the request did not arrive whole in {self.request_deadline_s:g}s"
            )
            await self._write(writer, 408, late.body(), close=True)
            return False
        except HttpError as error:
            await self._write(
                writer, error.status, APIError(error.status, error.message).body(), True
            )
            return False
        if request is None:
            return False
        status: int
        body: dict[str, Any]
        if request.path.split("?", 1)[0].rstrip("/") == "/health" and request.method == "GET":
            status, body = 200, {"status": "ok"}  # answered here: a busy pool is still alive
        else:
            loop = asyncio.get_running_loop()
            status, body = await loop.run_in_executor(self._pool, self._answer, request)
        self._log(writer, request, status)
        return await self._write(writer, status, body, close=not request.keep_alive)

    async def _write(
        self, writer: asyncio.StreamWriter, status: int, body: dict[str, Any], close: bool
    ) -> bool:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        writer.write(response_bytes(status, data, close))
        try:
            async with asyncio.timeout(self.request_deadline_s):
                await writer.drain()
        except TimeoutError:
            return False  # a client that does not read its reply loses the connection
        return not close

    def _log(self, writer: asyncio.StreamWriter, request: HttpRequest, status: int) -> None:
        if self.log:
            peer = writer.get_extra_info("peername") or ("?",)
            print(f'{peer[0]} "{request.method} {request.path}" {status}', file=sys.stderr)

    # The workers -------------------------------------------------------------------------

    def _answer(self, request: HttpRequest) -> tuple[int, dict[str, Any]]:
        try:
            return 200, self._route(request)
        except APIError as error:
            return error.status, error.body()
        except (
            Exception
        ) as exc:  # a bug or a model failure: this request's 500, not the server's end
            traceback.print_exc(file=sys.stderr)
            return 500, APIError(500, f"internal error: {exc!r}", kind="server_error").body()

    def _route(self, request: HttpRequest) -> dict[str, Any]:
        path = request.path.split("?", 1)[0].rstrip("/") or "/"
        if request.method == "GET":
            if path == "/v1/models":
                return self.service.models()
            if path.startswith("/v1/models/"):
                return self.service.model(path.removeprefix("/v1/models/"))
            raise _not_found(request.method, path)
        if request.method != "POST":
            raise APIError(
                405, f"method {request.method} is not allowed", code="method_not_allowed"
            )
        routes: dict[str, Callable[[Any], dict[str, Any]]] = {
            "/v1/chat/completions": self.service.chat,
            "/v1/completions": self.service.complete,
        }
        body = json_body(request.body)
        route = routes.get(path)
        if route is None:
            raise _not_found(request.method, path)
        return route(body)


def json_body(data: bytes) -> Any:
    """The request body as JSON, or a 400 for anything that does not decode: bad syntax,
    bad UTF-8, nesting past the parser's depth, an integer past Python's digit limit."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeError are ValueErrors
        detail = str(exc) if not isinstance(exc, RecursionError) else "nested too deep"
        raise APIError(400, f"the body is not valid JSON: {detail[:200]}") from None


def _not_found(method: str, path: str) -> APIError:
    return APIError(404, f"no route {method} {path}", code="not_found")


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=BACKLOG)
