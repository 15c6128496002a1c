"""What a hostile client can cost `agentwheel serve`: half-sent requests are cut off at
the request deadline without holding a thread each, an oversized body is refused from its
Content-Length, and a body that cannot be parsed gets a JSON 400, never a dropped
connection. All on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from agentwheel.llm.server.http import OpenAIServer
from agentwheel.llm.server.service import ChatService
from tests.llm.test_server import NAME, ScriptedTokenModel

DEADLINE_S = 2.0
HALF_OPEN = 300
CHAT = {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture()
def server(tokenizer) -> Iterator[OpenAIServer]:
    service = ChatService(ScriptedTokenModel(tokenizer, "hello"), NAME)
    with OpenAIServer(service, port=0, request_deadline_s=DEADLINE_S).start() as running:
        yield running


def connect(server: OpenAIServer, sent: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    if sent:
        sock.sendall(sent)
    return sock


def what_came_back(sock: socket.socket) -> bytes:
    """Everything the server sent before it closed the connection."""
    data = b""
    with sock:
        while chunk := sock.recv(65536):
            data += chunk
    return data


HALF_SENT = [
    b"",  # connected, silent
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n",  # headers never end
    b'POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 500\r\n\r\n{"mo',  # short body
]


def test_300_half_open_connections_are_cut_off_while_health_and_a_request_are_answered(server):
    threads_before = threading.active_count()
    socks = [connect(server, HALF_SENT[i % 3]) for i in range(HALF_OPEN)]
    # One thread per connection would be 300 more; the pool has at most its workers.
    assert threading.active_count() < threads_before + 40
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as http:
        assert http.get("/health").json() == {"status": "ok"}
        reply = http.post("/v1/chat/completions", json=CHAT)
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    replies = [what_came_back(s) for s in socks]
    assert all(r == b"" for r in replies[0::3])  # idle: closed without a word
    assert all(r.startswith(b"HTTP/1.1 408 ") for r in replies[1::3])
    assert all(r.startswith(b"HTTP/1.1 408 ") for r in replies[2::3])
    assert b"did not arrive whole" in replies[1]
    assert server.open_connections == 0


def test_an_oversized_body_is_refused_from_its_content_length_before_it_is_sent(server):
    sock = connect(
        server, b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 31000000\r\n\r\n"
    )
    reply = what_came_back(sock)
    assert reply.startswith(b"HTTP/1.1 413 ") and b"the limit is" in reply


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"model": "x", "n": ' + b"7" * 5000 + b"}", b"\xff{"],
    ids=["100k deep", "5000-digit integer", "not utf-8"],
)
def test_a_body_that_cannot_be_parsed_is_a_json_400(server, body):
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        reply = http.post("/chat/completions", content=body)
        assert reply.status_code == 400
        assert "not valid JSON" in reply.json()["error"]["message"]
        assert http.post("/chat/completions", json=CHAT).status_code == 200
