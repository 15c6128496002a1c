"""What one reply from an OpenAI-compatible server may cost the client: a whole request
ends within `timeout_s` however slowly the server sends, and a compressed body that
inflates past the cap is an error, not gigabytes of memory."""

from __future__ import annotations

import json
import zlib

from agentwheel.core.messages import ChatRequest, Message, SamplingParams
from agentwheel.llm.openai_client import MAX_REPLY_BYTES
from agentwheel.llm.openai_compat import OpenAIChatModel
from tests.llm.openai_server import TEST_MODEL, OpenAITestServer, Reply, completion_body

PARAMS = SamplingParams(max_new_tokens=16, temperature=0.0)
HI = ChatRequest(messages=[Message(role="user", content="hi")], tools=[])


def test_a_server_that_trickles_bytes_is_cut_off_at_the_request_deadline():
    # One byte every 0.05 s: each read is quick, the whole body takes ~15 s.
    trickle = Reply(body=completion_body("slowly"), trickle_s=0.05)
    with OpenAITestServer(script=[trickle]) as server:
        model = OpenAIChatModel(TEST_MODEL, server.url, timeout_s=1.0, max_retries=0)
        [completion] = model.chat([HI], PARAMS)
        model.close()
    assert completion.failed
    assert "no response within 1s" in (completion.error or "")
    assert model.stats.failures_by_reason == {"timeout": 1}


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A valid completion body padded with spaces to `inflated_bytes`, gzip-compressed
    (about a thousandth of that size)."""
    body = json.dumps(completion_body("boom")).encode()
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [packer.compress(body[:-1])]
    padding = b" " * (1 << 20)
    for _ in range((inflated_bytes - len(body)) // len(padding)):
        out.append(packer.compress(padding))
    out.append(packer.compress(body[-1:]))
    out.append(packer.flush())
    return b"".join(out)


def test_a_gzip_bomb_is_refused_at_the_cap_after_decompression():
    bomb = gzip_bomb(MAX_REPLY_BYTES * 3)
    assert len(bomb) < MAX_REPLY_BYTES // 100
    reply = Reply(raw=bomb, headers={"Content-Encoding": "gzip"})
    with OpenAITestServer(script=[reply]) as server:
        model = OpenAIChatModel(TEST_MODEL, server.url, timeout_s=30, max_retries=0)
        [completion] = model.chat([HI], PARAMS)
        model.close()
    assert completion.failed
    assert "decompressed" in (completion.error or "")
    assert model.stats.failures_by_reason == {"invalid_response": 1}


def test_a_small_gzip_reply_is_read_as_usual():
    body = json.dumps(completion_body("fine")).encode()
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    small = packer.compress(body) + packer.flush()
    reply = Reply(raw=small, headers={"Content-Encoding": "gzip"})
    with OpenAITestServer(script=[reply]) as server:
        model = OpenAIChatModel(TEST_MODEL, server.url, timeout_s=5, max_retries=0)
        [completion] = model.chat([HI], PARAMS)
        model.close()
    assert not completion.failed and completion.text == "fine"
