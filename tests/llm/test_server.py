"""`agentwheel serve`'s server over a tiny random-weight model, driven by the official
`openai` client over loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence

import httpx
import openai
import pytest

from agentwheel.core.messages import ChatRequest, Completion, Message, SamplingParams
from agentwheel.llm.hf import HFChatModel
from agentwheel.llm.openai_compat import OpenAIChatModel
from agentwheel.llm.server.http import OpenAIServer
from agentwheel.llm.server.service import ChatService, tool_calls_in
from agentwheel.llm.server.vllm_command import VLLMServeOptions, vllm_serve_command
from agentwheel.llm.template import ChatTemplateRenderer
from agentwheel.llm.tool_calls import format_tool_call
from tests.envs.sample_tasks import TOOLS

NAME = "tiny-served"
MESSAGES = [
    Message(role="system", content="Orders can be cancelled only while pending."),
    Message(role="user", content="Please cancel O-1."),
]
GREEDY = {"temperature": 0.0, "max_tokens": 12}


def wire(messages: Sequence[Message]) -> list[dict]:
    return [m.openai_dict() for m in messages]


def tool_schemas() -> list[dict]:
    return [t.openai_schema() for t in TOOLS]


@pytest.fixture(scope="module")
def server(chat_model) -> Iterator[OpenAIServer]:
    with OpenAIServer(ChatService(chat_model, NAME, max_batch_size=32), port=0).start() as running:
        yield running


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def in_process(model: HFChatModel, messages, tools=TOOLS, max_new_tokens=12) -> Completion:
    request = ChatRequest(messages=list(messages), tools=list(tools))
    return model.chat([request], SamplingParams(max_new_tokens=max_new_tokens))[0]


def test_models_lists_the_served_name(client):
    assert [m.id for m in client.models.list().data] == [NAME]
    assert client.models.retrieve(NAME).id == NAME


def test_a_greedy_reply_is_what_the_model_says_in_process(client, chat_model):
    reply = client.chat.completions.create(
        model=NAME, messages=wire(MESSAGES), tools=tool_schemas(), n=3, **GREEDY
    )
    expected = in_process(chat_model, MESSAGES)
    assert [c.message.content for c in reply.choices] == [expected.text] * 3
    assert [c.index for c in reply.choices] == [0, 1, 2]
    prompt = chat_model.renderer.initial_ids(MESSAGES, TOOLS)
    assert reply.usage.prompt_tokens == len(prompt)
    assert reply.usage.completion_tokens == 3 * expected.completion_tokens
    assert reply.usage.total_tokens == len(prompt) + 3 * expected.completion_tokens
    assert reply.choices[0].finish_reason == (
        "length" if expected.finish_reason == "length" else "stop"
    )


def test_stop_strings_cut_the_reply(client, chat_model):
    text = in_process(chat_model, MESSAGES).text
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop and stop in text
    reply = client.chat.completions.create(
        model=NAME, messages=wire(MESSAGES), tools=tool_schemas(), stop=[stop], **GREEDY
    )
    assert reply.choices[0].message.content == text[: text.index(stop)]
    assert reply.choices[0].finish_reason == "stop"


def test_sampling_with_a_seed_repeats(client):
    args = {"model": NAME, "messages": wire(MESSAGES), "temperature": 1.5, "top_p": 0.9}
    first = client.chat.completions.create(seed=7, max_tokens=10, **args)
    again = client.chat.completions.create(seed=7, max_tokens=10, **args)
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.usage.completion_tokens <= 10


def test_a_token_cap_bounds_every_reply_whatever_the_request_asks(chat_model):
    service = ChatService(chat_model, NAME, max_tokens_cap=3)
    with OpenAIServer(service, port=0).start() as capped:
        client = openai.OpenAI(base_url=capped.base_url, api_key="unused", max_retries=0)
        chat = client.chat.completions.create(
            model=NAME,
            messages=wire(MESSAGES),
            tools=tool_schemas(),
            max_tokens=500,
            temperature=0.0,
        )
        text = client.completions.create(model=NAME, prompt="Hello", max_tokens=500, temperature=0)
    assert chat.usage.completion_tokens == 3 and chat.choices[0].finish_reason == "length"
    assert text.usage.completion_tokens == 3
    assert (
        chat.choices[0].message.content == in_process(chat_model, MESSAGES, max_new_tokens=3).text
    )


def test_completions_continue_raw_text(client, chat_model):
    prompt = chat_model.renderer.render_text(MESSAGES, TOOLS, add_generation_prompt=True)
    reply = client.completions.create(
        model=NAME, prompt=[prompt, prompt], max_tokens=12, temperature=0
    )
    expected = in_process(chat_model, MESSAGES)
    assert [c.text for c in reply.choices] == [expected.text, expected.text]
    assert reply.usage.prompt_tokens == 2 * len(chat_model.renderer.initial_ids(MESSAGES, TOOLS))
    assert reply.object == "text_completion"


def test_32_concurrent_requests_are_all_answered_in_batched_calls(client, server, chat_model):
    prompts = [f"Please cancel order O-{i}." for i in range(32)]
    start = threading.Barrier(len(prompts))
    replies: dict[int, str | None] = {}

    def ask(index: int) -> None:
        messages = [MESSAGES[0], Message(role="user", content=prompts[index])]
        start.wait()
        reply = client.chat.completions.create(model=NAME, messages=wire(messages), **GREEDY)
        replies[index] = reply.choices[0].message.content

    calls_before = server.service.batcher.stats.calls
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(replies) == list(range(32))
    alone = {
        index: in_process(
            chat_model, [MESSAGES[0], Message(role="user", content=prompts[index])], tools=[]
        ).text
        for index in replies
    }
    # Each reply is its own prompt's: padded into a batch, float rounding may flip a rare
    # near-tie of the random model, never swap replies between requests.
    same = sum(replies[i] == alone[i] for i in replies)
    assert same >= 30, {i: (replies[i], alone[i]) for i in replies if replies[i] != alone[i]}
    stats = server.service.batcher.stats
    assert stats.largest_call > 1 and stats.calls - calls_before < 32


def _valid() -> dict:
    return {"model": NAME, "messages": wire(MESSAGES), "max_tokens": 4}


MALFORMED = {
    "unknown model": ({**_valid(), "model": "gpt-4"}, 404, "model"),
    "negative max_tokens": ({**_valid(), "max_tokens": -5}, 400, "max_tokens"),
    "tools not a list": ({**_valid(), "tools": {"name": "get_order"}}, 400, "tools"),
    "a tool without a function": (
        {**_valid(), "tools": [{"type": "function"}]},
        400,
        "tools.0.function",
    ),
    "no messages": ({"model": NAME, "messages": []}, 400, "messages"),
    "a bad role": (
        {**_valid(), "messages": [{"role": "robot", "content": "x"}]},
        400,
        "messages.0.role",
    ),
    "tool_choice required": ({**_valid(), "tool_choice": "required"}, 400, "tool_choice"),
    "streaming": ({**_valid(), "stream": True}, 400, "stream"),
    "n of 0": ({**_valid(), "n": 0}, 400, "n"),
    "temperature 3": ({**_valid(), "temperature": 3}, 400, "temperature"),
    "a negative seed": ({**_valid(), "seed": -1}, 400, "seed"),
    "not an object": ([1, 2], 400, None),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_request_gets_a_clear_4xx_and_the_server_keeps_serving(server, client, case):
    body, status, param = MALFORMED[case]
    response = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"] and (param is None or param.split(".")[0] in error["message"])
    assert client.chat.completions.create(**_valid()).choices[0].message.content is not None


def test_bad_json_bad_paths_and_methods_are_4xx_over_one_connection(server, client):
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        bad_json = http.post("/chat/completions", content=b'{"model": "tiny-served", ')
        assert (
            bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
        )
        assert http.post("/embeddings", json={}).status_code == 404
        assert http.get("/chat/completions").status_code == 404
        assert http.delete("/models").status_code == 405
        assert http.post("/completions", json={"model": NAME, "prompt": [10**9]}).status_code == 400
        assert http.post("/completions", json={"model": NAME, "prompt": ""}).status_code == 400
        # The same keep-alive connection still serves a valid request.
        ok = http.post("/chat/completions", json=_valid())
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["role"] == "assistant"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(**{**_valid(), "model": "nope"})


def test_a_prompt_longer_than_the_context_is_refused(client, chat_model):
    long = [Message(role="user", content="word " * (chat_model.max_context + 10))]
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(model=NAME, messages=wire(long), max_tokens=4)


class ScriptedTokenModel:
    """A token back-end (real tokenizer and template) whose reply is fixed text: the
    served reply's tool-call handling without training a model to write calls."""

    def __init__(self, tokenizer, reply: str):
        self.name = "scripted-tokens"
        self._renderer = ChatTemplateRenderer(tokenizer)
        self.reply = reply
        self.requests: list[ChatRequest] = []

    @property
    def renderer(self) -> ChatTemplateRenderer:
        return self._renderer

    def chat(self, requests: Sequence[ChatRequest], params: SamplingParams) -> list[Completion]:
        self.requests += requests
        ids = self._renderer.encode(self.reply)
        return [
            Completion(text=self.reply, completion_ids=ids, completion_tokens=len(ids))
            for _ in requests
        ]


@pytest.fixture()
def scripted(tokenizer):
    def serve(reply: str) -> OpenAIServer:
        return OpenAIServer(ChatService(ScriptedTokenModel(tokenizer, reply), NAME), port=0).start()

    return serve


def test_tool_calls_come_back_structured_and_round_trip(scripted):
    text = "Let me check." + format_tool_call("get_order", {"order_id": "O-1"})
    with scripted(text) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")
        reply = client.chat.completions.create(
            model=NAME, messages=wire(MESSAGES), tools=tool_schemas(), tool_choice="auto"
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
        (call,) = choice.message.tool_calls
        assert call.function.name == "get_order"
        assert json.loads(call.function.arguments) == {"order_id": "O-1"}

        # The next turn carries the call and its result; the server renders them as the
        # template renders the same conversation in-process.
        history = [
            *wire(MESSAGES),
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"status": "pending"}'},
        ]
        client.chat.completions.create(model=NAME, messages=history, tools=tool_schemas())
        model = server.service.batcher.model
        typed = [
            *MESSAGES,
            Message(role="assistant", content="Let me check.", tool_calls=[_typed(call)]),
            Message(role="tool", tool_call_id=call.id, content='{"status": "pending"}'),
        ]
        assert model.requests[-1].prompt_ids == model.renderer.initial_ids(typed, TOOLS)

        # tool_choice none: the text as written, no calls.
        plain = client.chat.completions.create(
            model=NAME, messages=wire(MESSAGES), tools=tool_schemas(), tool_choice="none"
        )
        assert plain.choices[0].message.content == text and not plain.choices[0].message.tool_calls

        # Our own openai: back-end reads them as typed, validated calls.
        with OpenAIChatModel(NAME, server.base_url) as policy_model:
            completion = policy_model.chat(
                [ChatRequest(messages=MESSAGES, tools=TOOLS)], SamplingParams()
            )[0]
        assert [(c.name, c.arguments) for c in completion.tool_calls] == [
            ("get_order", {"order_id": "O-1"})
        ]


def _typed(call):
    from agentwheel.core.messages import ToolCall

    return ToolCall(
        id=call.id, name=call.function.name, arguments=json.loads(call.function.arguments)
    )


def test_a_reply_whose_call_does_not_parse_is_returned_as_written(scripted):
    text = '<tool_call>\n{"name": "get_order", "arguments": {"order_id": \n</tool_call>'
    with scripted(text) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")
        reply = client.chat.completions.create(
            model=NAME, messages=wire(MESSAGES), tools=tool_schemas()
        )
        assert reply.choices[0].message.content == text and not reply.choices[0].message.tool_calls
        with OpenAIChatModel(NAME, server.base_url) as policy_model:
            completion = policy_model.chat(
                [ChatRequest(messages=MESSAGES, tools=TOOLS)], SamplingParams()
            )[0]
        assert [e.kind for e in completion.tool_call_errors] == ["malformed_json"]


def test_tool_calls_in_reads_hermes_blocks():
    prose, calls = tool_calls_in(
        'Hi <tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>'
    )
    assert prose == "Hi" and json.loads(calls[0]["function"]["arguments"]) == {"a": 1}
    assert tool_calls_in("no calls") == ("no calls", [])
    assert tool_calls_in('<tool_call>{"arguments": {}}</tool_call>') is None
    assert tool_calls_in('<tool_call>{"name": "f", "arguments": [1]}</tool_call>') is None


def test_vllm_serve_command_matches_our_templates():
    command = vllm_serve_command(
        "vllm:runs/demo/checkpoints/last/model?enable_thinking=false",
        VLLMServeOptions(
            host="0.0.0.0", port=9001, model_name="demo", max_batch_size=64, dtype="bfloat16"
        ),
    )
    assert command[:3] == ["vllm", "serve", "runs/demo/checkpoints/last/model"]

    def flag(name: str) -> str:
        return command[command.index(name) + 1]

    assert flag("--host") == "0.0.0.0" and flag("--port") == "9001"
    assert flag("--served-model-name") == "demo" and flag("--max-num-seqs") == "64"
    assert "--enable-auto-tool-choice" in command
    assert flag("--tool-call-parser") == "hermes" and flag("--dtype") == "bfloat16"
    assert json.loads(flag("--default-chat-template-kwargs")) == {"enable_thinking": False}
    plain = vllm_serve_command("vllm:Qwen/Qwen3-8B", VLLMServeOptions())
    assert "--default-chat-template-kwargs" not in plain and "--dtype" not in plain
    assert plain[plain.index("--served-model-name") + 1] == "vllm:Qwen/Qwen3-8B"
    with pytest.raises(ValueError):
        vllm_serve_command("hf:default", VLLMServeOptions())
