"""HTTP/1.1 on an asyncio stream, as much as an OpenAI-compatible server needs: a request
line, headers, and a body of `Content-Length` bytes; responses with a JSON body.

Everything read is bounded before it is read: the request line and headers together by
`MAX_HEADER_BYTES`, the body by the cap the caller passes, checked against
`Content-Length` before a byte of the body is read. Chunked request bodies are refused
(411): the OpenAI SDKs, httpx and curl send a length.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus

MAX_HEADER_BYTES = 64 * 1024


class HttpError(Exception):
    """A request that cannot be read: answered with `status` and the connection closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


async def read_request(
    first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_body: int
) -> HttpRequest | None:
    """The request whose `first` byte has come; None when the client closed the connection
    having sent only blank lines. Raises `HttpError` for a request that is malformed or
    too large."""
    try:
        head = first + await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not (first + exc.partial).strip():
            return None
        raise HttpError(400, "the connection closed in the middle of the request") from None
    except asyncio.LimitOverrunError:
        raise HttpError(431, f"request line and headers over {MAX_HEADER_BYTES} bytes") from None
    method, path, version, headers = _parse_head(head)
    length = _content_length(headers)
    if length > max_body:
        raise HttpError(413, f"the body is {length} bytes; the limit is {max_body}")
    if length and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    try:
        body = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError:
        raise HttpError(400, "the connection closed before the whole body came") from None
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
    return HttpRequest(method, path, headers, body, keep_alive)


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # latin-1 decodes any byte; kept for the type checker
        raise HttpError(400, "unreadable request head") from None
    request_line, *lines = text.rstrip("\r\n").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, f"bad request line {request_line[:100]!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise HttpError(400, f"bad header line {line[:100]!r}")
        headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1], parts[2], headers


def _content_length(headers: dict[str, str]) -> int:
    if "transfer-encoding" in headers:
        raise HttpError(411, "chunked request bodies are not accepted; send Content-Length")
    raw = headers.get("content-length", "0")
    if not raw.isdigit() or len(raw) > 18:
        raise HttpError(400, f"bad Content-Length {raw[:40]!r}")
    return int(raw)


def response_bytes(status: int, body: bytes, close: bool) -> bytes:
    """A complete HTTP/1.1 response with a JSON body."""
    phrase = HTTPStatus(status).phrase
    head = [
        f"HTTP/1.1 {status} {phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
