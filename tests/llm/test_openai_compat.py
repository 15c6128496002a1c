import asyncio
import concurrent.futures
import gc
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentwheel.core.messages import ChatRequest, Message, SamplingParams, ToolCall
from agentwheel.core.task import ToolSpec
from agentwheel.llm.openai_compat import (
    ModelConfigError,
    OpenAIChatModel,
    OpenAICompatError,
    parse_openai_spec,
)
from agentwheel.llm.openai_wire import wire_messages
from agentwheel.llm.types import ChatModel
from agentwheel.specs import load_chat_model
from tests.llm.openai_server import (
    TEST_MODEL,
    OpenAITestServer,
    error_reply,
    invalid_json_reply,
    last_user_message,
    slow_reply,
    text_reply,
    tool_call_reply,
)

TOOLS = [
    ToolSpec(
        name="get_order",
        description="Look up an order by id.",
        parameters={
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
        kind="query",
    ),
    ToolSpec(
        name="refund",
        description="Refund part of an order.",
        parameters={
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
            "required": ["order_id", "amount"],
        },
        kind="action",
    ),
]
PARAMS = SamplingParams(max_new_tokens=32, temperature=0.5, top_p=0.9, seed=7)


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as running:
        yield running


def make_model(server: OpenAITestServer, **overrides) -> OpenAIChatModel:
    options = {"timeout_s": 2.0, "max_retries": 2} | overrides
    return OpenAIChatModel(TEST_MODEL, server.url, **options)


def ask(text: str, tools: list[ToolSpec] | None = None) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=text)], tools=tools or [])


def test_text_round_trip_sends_the_openai_payload(server):
    server.push(text_reply("Order O-1 is pending.", prompt_tokens=21, completion_tokens=5))
    history = [
        Message(role="system", content="Be brief."),
        Message(role="user", content="Where is O-1?"),
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="c1", name="get_order", arguments={"order_id": "O-1"})],
        ),
        Message(role="tool", content='{"status": "pending"}', tool_call_id="c1", name="get_order"),
    ]
    model = make_model(server, extra_body={"top_k": 20})

    [completion] = model.chat([ChatRequest(messages=history, tools=TOOLS)], PARAMS)

    assert completion.text == "Order O-1 is pending."
    assert completion.finish_reason == "stop" and completion.error is None
    assert (completion.prompt_tokens, completion.completion_tokens) == (21, 5)
    assert completion.completion_ids is None and completion.logprobs is None
    [body] = server.chat_bodies
    assert body["model"] == TEST_MODEL
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
        0.5,
        0.9,
        32,
        7,
    )
    assert body["top_k"] == 20
    assert body["tools"] == [t.openai_schema() for t in TOOLS]
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    wire_call = body["messages"][2]["tool_calls"][0]
    assert wire_call["function"]["name"] == "get_order"
    # The OpenAI API takes arguments as a JSON string, not an object.
    assert json.loads(wire_call["function"]["arguments"]) == {"order_id": "O-1"}
    assert body["messages"][3] == {
        "role": "tool",
        "content": '{"status": "pending"}',
        "tool_call_id": "c1",
        "name": "get_order",
    }
    assert model.stats.as_dict()["succeeded"] == 1


def test_a_request_that_is_not_json_is_an_error_completion_and_not_sent(server):
    model = make_model(server, extra_body={"logit_bias": {1, 2}})
    [completion] = model.chat([ask("hi")], PARAMS)
    assert completion.failed and "not JSON-serialisable" in (completion.error or "")
    assert server.chat_bodies == []
    assert model.stats.failures_by_reason == {"unserialisable_request": 1}


def test_no_tools_key_without_tools_and_no_seed_when_unset(server):
    make_model(server).chat([ask("hi")], SamplingParams())
    [body] = server.chat_bodies
    assert "tools" not in body and "seed" not in body


def test_structured_tool_calls_become_tool_calls_with_dict_arguments(server):
    server.push(tool_call_reply(("refund", {"order_id": "O-1", "amount": 12.5}), content="Sure."))
    [completion] = make_model(server).chat([ask("refund O-1", TOOLS)], PARAMS)
    assert completion.tool_calls == [
        ToolCall(id="call_0", name="refund", arguments={"order_id": "O-1", "amount": 12.5})
    ]
    assert completion.tool_call_errors == []
    assert completion.text == "Sure."


def test_malformed_unknown_and_mistyped_calls_are_tool_call_errors(server):
    server.push(
        tool_call_reply(
            ("get_order", '{"order_id": "O-1"'),
            ("delete_everything", {}),
            ("refund", {"order_id": "O-1", "amount": "lots"}),
            ("get_order", {"order_id": "O-2"}),
        )
    )
    [completion] = make_model(server).chat([ask("go", TOOLS)], PARAMS)
    assert [e.kind for e in completion.tool_call_errors] == [
        "malformed_json",
        "unknown_tool",
        "bad_arguments",
    ]
    assert completion.tool_call_errors[0].tool == "get_order"
    assert completion.tool_call_errors[1].tool == "delete_everything"
    assert completion.tool_calls == [
        ToolCall(id="call_3", name="get_order", arguments={"order_id": "O-2"})
    ]
    assert completion.finish_reason == "stop"


def test_hermes_blocks_in_content_are_parsed_when_no_structured_calls(server):
    text = 'Checking.<tool_call>\n{"name": "get_order", "arguments": {"order_id": "O-9"}}\n</tool_call>'
    server.push(text_reply(text))
    [completion] = make_model(server).chat([ask("where", TOOLS)], PARAMS)
    assert completion.tool_calls == [
        ToolCall(id="call_0", name="get_order", arguments={"order_id": "O-9"})
    ]
    assert completion.text == text


def test_length_finish_reason(server):
    server.push(text_reply("cut", finish_reason="length"))
    [completion] = make_model(server).chat([ask("long story")], PARAMS)
    assert completion.finish_reason == "length" and not completion.failed


def test_429_then_success_honours_retry_after(server):
    server.push(error_reply(429, "slow down", retry_after=0.3), text_reply("ok"))
    model = make_model(server)
    start = time.monotonic()
    [completion] = model.chat([ask("hi")], PARAMS)
    assert time.monotonic() - start >= 0.3
    assert completion.text == "ok"
    assert model.stats.retries == 1
    assert model.stats.retries_by_reason == {"http_429": 1}
    assert model.stats.failures == 0
    assert len(server.chat_bodies) == 2


def test_a_retry_after_beyond_the_sdk_limit_fails_now_instead_of_waiting(server):
    # The SDK waits at most two minutes for a Retry-After; a server asking for an hour
    # gets an error completion at once, not a run that hangs.
    server.push(error_reply(429, "come back in an hour", retry_after=3600))
    model = make_model(server)
    [completion] = model.chat([ask("hi")], PARAMS)
    assert completion.failed and "HTTP 429" in (completion.error or "")
    assert "come back in an hour" in (completion.error or "")
    assert len(server.chat_bodies) == 1
    assert model.stats.failures_by_reason == {"http_429": 1}


def test_persistent_500_fails_one_request_and_not_the_batch():
    def responder(body):
        if last_user_message(body) == "doomed":
            return error_reply(500, "boom")
        return text_reply(f"fine: {last_user_message(body)}")

    with OpenAITestServer(responder) as server:
        model = make_model(server, max_retries=2)
        completions = model.chat([ask("a"), ask("doomed"), ask("b")], PARAMS)

    assert [c.text for c in completions] == ["fine: a", "", "fine: b"]
    failed = completions[1]
    assert failed.failed and failed.error is not None
    assert "HTTP 500" in failed.error and "boom" in failed.error and "3 attempts" in failed.error
    assert [last_user_message(b) for b in server.chat_bodies].count("doomed") == 3
    stats = model.stats
    assert (stats.requests, stats.succeeded, stats.failures, stats.retries) == (3, 2, 1, 2)
    assert stats.retries_by_reason == {"http_500": 2}
    assert model.stats.failures_by_reason == {"http_500": 1}


def test_503_is_retried(server):
    server.push(error_reply(503), text_reply("second time"))
    model = make_model(server)
    [completion] = model.chat([ask("hi")], PARAMS)
    assert completion.text == "second time"
    assert model.stats.retries_by_reason == {"http_503": 1}


def test_invalid_json_is_an_error_completion(server):
    # A 200 whose body is garbled is not retried: the SDK retries on status codes and
    # transport errors, and a complete but garbled body is neither.
    server.push(invalid_json_reply())
    model = make_model(server)
    [completion] = model.chat([ask("hi")], PARAMS)
    assert completion.failed and "unreadable response body" in (completion.error or "")
    assert (completion.error or "").endswith("after 1 attempt")
    assert len(server.chat_bodies) == 1
    assert model.stats.failures_by_reason == {"invalid_response": 1}


def test_timeout_is_retried_then_reported(server):
    server.push(slow_reply(5.0), slow_reply(5.0))
    model = make_model(server, timeout_s=0.2, max_retries=1)
    start = time.monotonic()
    [completion] = model.chat([ask("hi")], PARAMS)
    # Well under the 5 s the server takes: both attempts were cut off.
    assert time.monotonic() - start < 4.0
    assert completion.failed and "no response within 0.2s" in (completion.error or "")
    assert len(server.chat_bodies) == 2
    assert model.stats.retries_by_reason == {"timeout": 1}
    assert model.stats.failures_by_reason == {"timeout": 1}


def test_bad_request_is_not_retried(server):
    server.push(error_reply(400, "context length exceeded"))
    model = make_model(server)
    [completion] = model.chat([ask("huge")], PARAMS)
    assert completion.failed and "context length exceeded" in (completion.error or "")
    assert len(server.chat_bodies) == 1 and model.stats.retries == 0


def test_connection_refused_is_an_error_completion():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = OpenAIChatModel("m", f"http://127.0.0.1:{port}/v1", max_retries=1)
    [completion] = model.chat([ask("anyone?")], PARAMS)
    assert completion.failed and "connection error" in (completion.error or "")
    assert model.stats.failures_by_reason == {"connection": 1}


def test_wrong_key_raises_config_error_without_the_key(monkeypatch):
    monkeypatch.setenv("AGENTWHEEL_TEST_KEY", "sk-wrong-secret-123")
    with OpenAITestServer(api_key="sk-right") as server:
        model = make_model(server, api_key_env="AGENTWHEEL_TEST_KEY")
        with pytest.raises(ModelConfigError) as caught:
            model.chat([ask("a"), ask("b")], PARAMS)
        headers = server.received[0].headers
        url = server.url
    message = str(caught.value)
    assert isinstance(caught.value, OpenAICompatError)
    assert url in message and "AGENTWHEEL_TEST_KEY" in message and "401" in message
    assert "sk-wrong-secret-123" not in message
    assert "sk-wrong-secret-123" not in repr(model)
    assert headers["authorization"] == "Bearer sk-wrong-secret-123"
    assert caught.value.status == 401


def test_a_key_the_server_echoes_is_redacted_from_errors(server, monkeypatch):
    monkeypatch.setenv("AGENTWHEEL_TEST_KEY", "sk-echoed-secret-456")
    server.push(
        error_reply(400, "bad request from key sk-echoed-secret-456"),
        error_reply(401, "key sk-echoed-secret-456 is revoked"),
    )
    model = make_model(server, api_key_env="AGENTWHEEL_TEST_KEY")
    [completion] = model.chat([ask("a")], PARAMS)
    assert completion.failed and "bad request from key [api key]" in (completion.error or "")
    assert "sk-echoed-secret-456" not in (completion.error or "")
    with pytest.raises(ModelConfigError) as caught:
        model.chat([ask("b")], PARAMS)
    assert "key [api key] is revoked" in str(caught.value)
    assert "sk-echoed-secret-456" not in str(caught.value)


def test_right_key_is_sent_as_bearer_token(monkeypatch):
    monkeypatch.setenv("AGENTWHEEL_TEST_KEY", "sk-right")
    with OpenAITestServer(api_key="sk-right") as server:
        model = make_model(server, api_key_env="AGENTWHEEL_TEST_KEY")
        [completion] = model.chat([ask("a")], PARAMS)
    assert completion.text == "echo: a"


def test_missing_key_sends_a_placeholder(server, monkeypatch):
    monkeypatch.delenv("AGENTWHEEL_UNSET_KEY", raising=False)
    make_model(server, api_key_env="AGENTWHEEL_UNSET_KEY").chat([ask("a")], PARAMS)
    assert server.received[0].headers["authorization"] == "Bearer EMPTY"


def test_403_is_a_config_error(server):
    server.push(error_reply(403, "forbidden"))
    with pytest.raises(ModelConfigError, match="rejected the credentials"):
        make_model(server).chat([ask("a")], PARAMS)


def test_unknown_model_raises_config_error_naming_it(server):
    model = OpenAIChatModel("no-such-model", server.url, max_retries=3)
    with pytest.raises(ModelConfigError) as caught:
        model.chat([ask("a")], PARAMS)
    message = str(caught.value)
    assert "'no-such-model'" in message and server.url in message and "404" in message
    assert len(server.chat_bodies) == 1  # not retried


def test_concurrency_bound_is_respected():
    with OpenAITestServer(latency_s=0.05) as server:
        model = make_model(server, concurrency=4)
        completions = model.chat([ask(str(i)) for i in range(20)], PARAMS)
    assert [c.text for c in completions] == [f"echo: {i}" for i in range(20)]
    assert 1 < server.max_in_flight <= 4


def test_chat_works_inside_a_running_event_loop(server):
    model = make_model(server)

    async def caller():
        sync_result = model.chat([ask("from sync")], PARAMS)
        async_result = await model.achat([ask("from async")], PARAMS)
        return sync_result + async_result

    completions = asyncio.run(caller())
    assert [c.text for c in completions] == ["echo: from sync", "echo: from async"]


def test_empty_batch_sends_nothing(server):
    assert make_model(server).chat([], PARAMS) == []
    assert server.received == []


def test_model_is_a_chat_model_loaded_from_a_spec(server):
    model = load_chat_model(server.spec())
    assert isinstance(model, ChatModel) and isinstance(model, OpenAIChatModel)
    assert model.renderer is None
    assert (model.model, model.base_url, model.name) == (TEST_MODEL, server.url, server.spec())


def test_server_lists_models_and_binds_loopback(server):
    with urllib.request.urlopen(f"{server.url}/models", timeout=10) as response:
        listing = json.load(response)
    assert [m["id"] for m in listing["data"]] == [TEST_MODEL]
    assert server.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("spec", "model", "base_url"),
    [
        ("openai:qwen3-8b@http://localhost:8000/v1", "qwen3-8b", "http://localhost:8000/v1"),
        ("openai:org/model@https://api.example.com/v1/", "org/model", "https://api.example.com/v1"),
        ("openai:claude@2024@https://h.example/v1", "claude@2024", "https://h.example/v1"),
    ],
)
def test_spec_parsing(spec, model, base_url):
    assert parse_openai_spec(spec) == {"model": model, "base_url": base_url}


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("hf:qwen", "not an OpenAI model spec"),
        ("openai:qwen3-8b", "no @<base_url>"),
        ("openai:qwen3-8b@localhost:8000", "no @<base_url>"),
        ("openai:@http://localhost:8000/v1", "needs a model name"),
        ("openai:my model@http://localhost:8000/v1", "needs a model name"),
        ("openai:m@http://", "must be an http(s) URL with a host"),
        ("openai:m@http://localhost:99999999/v1", "not a valid URL"),
    ],
)
def test_bad_specs_raise_clear_value_errors(spec, complaint):
    with pytest.raises(ValueError, match=re.escape(complaint)):
        parse_openai_spec(spec)


def test_error_replies_to_malformed_calls_go_out_as_user_messages():
    messages = [
        Message(role="user", content="cancel O-1"),
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="call_1_0", name="get_order", arguments={"order_id": "O-1"})],
        ),
        Message(
            role="tool", content='{"status": "pending"}', tool_call_id="call_1_0", name="get_order"
        ),
        Message(
            role="tool",
            content='{"error": "invalid_tool_call"}',
            tool_call_id="invalid_1_0",
            name="x",
        ),
    ]
    wire = wire_messages(messages)
    assert [m["role"] for m in wire] == ["user", "assistant", "tool", "user"]
    assert wire[3]["content"].startswith("[tool error]")
    assert wire[1]["tool_calls"][0]["function"]["arguments"] == '{"order_id": "O-1"}'


# ---- the model's own loop and its kept-alive connections --------------------------------


def test_connections_and_loop_are_reused_across_calls():
    with OpenAITestServer(latency_s=0.02) as server:
        model = make_model(server, concurrency=4)
        for round_ in range(5):
            completions = model.chat([ask(f"{round_}.{i}") for i in range(8)], PARAMS)
            assert [c.text for c in completions] == [f"echo: {round_}.{i}" for i in range(8)]
        runner = model._loop_thread
        model.chat([ask("again")], PARAMS)
        assert model._loop_thread is runner  # one loop thread for the model's lifetime
        assert server.connections <= 4  # one per slot, kept alive across the five calls
        model.close()
    assert not runner.thread.is_alive() and runner.loop.is_closed()


def test_calls_from_several_threads_share_the_concurrency_bound():
    with OpenAITestServer(latency_s=0.05) as server:
        model = make_model(server, concurrency=3)

        def call(n: int) -> list[str]:
            return [c.text for c in model.chat([ask(f"{n}.{i}") for i in range(4)], PARAMS)]

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(call, range(6)))
        model.close()
    assert results == [[f"echo: {n}.{i}" for i in range(4)] for n in range(6)]
    assert 1 < server.max_in_flight <= 3
    assert server.connections <= 3
    assert model.stats.requests == model.stats.succeeded == 24


def test_close_is_idempotent_and_a_later_call_reopens(server):
    with make_model(server) as model:
        assert model.chat([ask("one")], PARAMS)[0].text == "echo: one"
    model.close()
    assert model._loop_thread is None
    assert model.chat([ask("two")], PARAMS)[0].text == "echo: two"
    model.close()


def test_close_cancels_a_batch_in_flight():
    with OpenAITestServer(script=[slow_reply(5.0)]) as server:
        model = make_model(server, timeout_s=10)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(model.chat, [ask("slow")], PARAMS)
            deadline = time.monotonic() + 5
            while not server.in_flight and time.monotonic() < deadline:
                time.sleep(0.01)
            started = time.monotonic()
            model.close()
            with pytest.raises(OpenAICompatError, match="closed"):
                pending.result(timeout=5)
        assert time.monotonic() - started < 2


def test_a_dropped_model_stops_its_thread(server):
    model = make_model(server)
    model.chat([ask("hi")], PARAMS)
    runner = model._loop_thread
    del model
    gc.collect()
    runner.thread.join(5)
    assert not runner.thread.is_alive() and runner.loop.is_closed()


EXIT_CHILD = """
import sys
from agentwheel.llm.openai_compat import OpenAIChatModel
from agentwheel.core.messages import ChatRequest, Message, SamplingParams

model = OpenAIChatModel("test-model", sys.argv[1], timeout_s=5)
[completion] = model.chat([ChatRequest(messages=[Message(role="user", content="x")])],
                          SamplingParams(max_new_tokens=4))
assert completion.text == "echo: x", completion
print("ok")
"""


def test_an_open_model_exits_cleanly(server):
    # No close(): the interpreter's exit must still close the loop without warnings.
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", EXIT_CHILD, server.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    # Debug mode also reports steps slower than 0.1 s (the first request's lazy imports
    # on a loaded machine); those say nothing about closing, so they are left out.
    slow_step = re.compile(r"Executing <.*> took [0-9.]+ seconds")
    noise = [line for line in result.stderr.splitlines() if not slow_step.fullmatch(line)]
    assert noise == []
