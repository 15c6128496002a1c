"""The vLLM back-end against a stand-in `vllm` package (vLLM itself needs a CUDA GPU).

`FakeLLM` implements the part of `vllm.LLM` the back-end touches, with vLLM's semantics
where they matter: outputs in prompt order, `token_ids` ending with the stop token when
generation stopped on one, one `{token_id: Logprob}` dict per generated token, finish
reasons "stop"/"length". What it "generates" is a script each test sets; the tokenizer is
SmolLM2's real one (conftest), so prompt ids and parsed text are the ones a GPU run sees.
"""

from __future__ import annotations

import os
import re
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import GenerationConfig

from agentwheel.core.messages import ChatRequest, Message, SamplingParams
from agentwheel.envs.agent import ModelPolicy
from agentwheel.llm.hf import ModelLoadError
from agentwheel.llm.template import ChatTemplateRenderer, tool_chat_template
from agentwheel.llm.tool_calls import format_tool_call
from agentwheel.llm.types import ChatModel
from agentwheel.llm.vllm_backend import VLLMChatModel, load_vllm_model
from agentwheel.specs import SpecError, load_chat_model, load_policy
from tests.envs.sample_tasks import TOOLS

CONTEXT = 2048
MULTIPROCESSING = "VLLM_ENABLE_V1_MULTIPROCESSING"


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool = True


class SamplingParamsRecord:
    """`vllm.SamplingParams`, reduced to the keyword arguments it was built with."""

    def __init__(self, **kwargs: Any):
        self.kwargs = kwargs


def scripted_logprob(position: int) -> float:
    return -0.25 * (position + 1)


class FakeModel:
    """vLLM's model class, reduced to `load_weights`."""

    def __init__(self, events: list[str]):
        self.loaded: list[tuple[str, torch.Tensor]] = []
        self.events = events

    def load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> set[str]:
        self.events.append("load_weights")
        self.loaded.extend(weights)
        return {name for name, _ in weights}


@dataclass
class FakeLLM:
    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    # What the model would write after each prompt, before any stop rule applies.
    script: Callable[[list[int]], list[int]] = lambda prompt: list(range(1000, 1100))
    generate_calls: list[tuple[list[dict[str, list[int]]], list[Any]]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.multiprocessing_at_init = os.environ.get(MULTIPROCESSING)
        max_len = self.kwargs.get("max_model_len") or CONTEXT
        self.llm_engine = types.SimpleNamespace(
            model_config=types.SimpleNamespace(max_model_len=max_len)
        )
        self.worker_model = FakeModel(self.events)

    def generate(self, prompts, sampling_params, *, use_tqdm=True) -> list[RequestOutput]:
        self.generate_calls.append((list(prompts), list(sampling_params)))
        self.events.append("generate")
        outputs = []
        for number, (prompt, params) in enumerate(zip(prompts, sampling_params, strict=True)):
            ids, finish = [], "length"
            for token in self.script(prompt["prompt_token_ids"])[: params.kwargs["max_tokens"]]:
                ids.append(token)
                if token in params.kwargs["stop_token_ids"]:
                    finish = "stop"
                    break
            steps = [{t: Logprob(scripted_logprob(k), rank=1)} for k, t in enumerate(ids)]
            completion = CompletionOutput(
                0, "", ids, sum(scripted_logprob(k) for k in range(len(ids))), steps, finish
            )
            outputs.append(RequestOutput(str(number), prompt["prompt_token_ids"], [completion]))
        return outputs

    def apply_model(self, fn: Callable[[Any], Any]) -> list[Any]:
        return [fn(self.worker_model)]

    def reset_prefix_cache(self) -> bool:
        self.events.append("reset_prefix_cache")
        return True

    def sleep(self, level: int = 1) -> None:
        self.events.append(f"sleep({level})")

    def wake_up(self, tags: list[str] | None = None) -> None:
        self.events.append("wake_up")


def fake_llm_class(built: list[FakeLLM]) -> Callable[..., FakeLLM]:
    def construct(model: str, **kwargs: Any) -> FakeLLM:
        llm = FakeLLM(model, kwargs)
        built.append(llm)
        return llm

    return construct


@pytest.fixture
def built(monkeypatch) -> Iterator[list[FakeLLM]]:
    """Installs the stand-in `vllm` package; yields the engines `vllm.LLM` built."""
    engines: list[FakeLLM] = []
    fake = types.ModuleType("vllm")
    fake.LLM = fake_llm_class(engines)  # type: ignore[attr-defined]
    fake.SamplingParams = SamplingParamsRecord  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake)
    yield engines


@pytest.fixture
def llm(built) -> FakeLLM:
    return FakeLLM("tiny", {"max_model_len": CONTEXT})


@pytest.fixture
def model(llm, tokenizer) -> VLLMChatModel:
    return VLLMChatModel(llm, tokenizer, name="fake", template=tool_chat_template())


def _request(text: str, tools=()) -> ChatRequest:
    return ChatRequest(
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content=text),
        ],
        tools=list(tools),
    )


def _sent(llm: FakeLLM, call: int = -1) -> tuple[list[list[int]], list[dict[str, Any]]]:
    prompts, params = llm.generate_calls[call]
    return [p["prompt_token_ids"] for p in prompts], [p.kwargs for p in params]


GREEDY = SamplingParams(max_new_tokens=8)


def test_is_a_chat_model_with_the_hf_renderer(model: VLLMChatModel, tokenizer):
    assert isinstance(model, ChatModel)
    assert isinstance(model.renderer, ChatTemplateRenderer)
    reference = ChatTemplateRenderer(tokenizer, tool_chat_template())
    request = _request("Where is order O-1?", TOOLS)
    assert model.renderer.initial_ids(request.messages, request.tools) == reference.initial_ids(
        request.messages, request.tools
    )
    assert model.max_context == CONTEXT
    assert model.stop_ids == sorted({reference.end_of_turn_id, tokenizer.eos_token_id})


def test_one_generate_call_gets_the_renderers_ids_and_verbatim_prompt_ids(model, llm):
    plain, with_tools = _request("Hi there."), _request("Cancel O-1.", TOOLS)
    verbatim_ids = model.renderer.initial_ids(with_tools.messages, with_tools.tools)[:-3]
    # The messages say something else entirely; only the ids count.
    verbatim = ChatRequest(messages=plain.messages, prompt_ids=verbatim_ids)
    completions = model.chat([plain, with_tools, verbatim], GREEDY)
    assert len(llm.generate_calls) == 1
    prompts, _ = _sent(llm)
    expected = [
        model.renderer.initial_ids(plain.messages, []),
        model.renderer.initial_ids(with_tools.messages, with_tools.tools),
        verbatim_ids,
    ]
    assert prompts == expected
    assert [c.prompt_tokens for c in completions] == [len(ids) for ids in expected]


def test_greedy_maps_to_temperature_zero_with_every_knob_explicit(model, llm, tokenizer):
    model.chat([_request("Hi.")], GREEDY)
    _, [params] = _sent(llm)
    eot = model.renderer.end_of_turn_id
    assert params == {
        "n": 1,
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": -1,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "max_tokens": GREEDY.max_new_tokens,
        "stop_token_ids": sorted({eot, tokenizer.eos_token_id}),
        "seed": None,
        "logprobs": 0,
        "detokenize": False,
    }
    assert eot in params["stop_token_ids"]


def test_sampling_keeps_temperature_and_top_p_and_seeds_each_request_by_position(model, llm):
    params = SamplingParams(max_new_tokens=5, temperature=0.7, top_p=0.9, seed=40)
    same = _request("Same prompt for the whole group.")
    too_long = ChatRequest(messages=same.messages, prompt_ids=[42] * CONTEXT)
    model.chat([same, too_long, same, same], params)
    prompts, sent = _sent(llm)
    assert len(prompts) == 3 and prompts[0] == prompts[1] == prompts[2]
    # Seeds follow request positions (1 was the error), so copies of a prompt differ.
    assert [p["seed"] for p in sent] == [40, 42, 43]
    assert {(p["temperature"], p["top_p"], p["top_k"], p["max_tokens"]) for p in sent} == {
        (0.7, 0.9, -1, 5)
    }


def test_new_tokens_are_capped_by_the_context_per_request(model, llm):
    near_full = ChatRequest(messages=_request("x").messages, prompt_ids=[42] * (CONTEXT - 3))
    short = _request("Hi.")
    completions = model.chat([near_full, short], SamplingParams(max_new_tokens=64))
    _, sent = _sent(llm)
    assert [p["max_tokens"] for p in sent] == [3, 64]
    assert completions[0].finish_reason == "length"
    assert len(completions[0].completion_ids or []) == 3


def test_stop_token_is_kept_and_text_logprobs_and_tool_calls_come_from_the_ids(model, llm):
    renderer = model.renderer
    text = "Checking. " + format_tool_call("get_order", {"order_id": "O-1"})
    generated = [*renderer.encode(text), renderer.end_of_turn_id]
    llm.script = lambda prompt: [*generated, *renderer.encode("never seen")]
    completion = model.chat([_request("Where is O-1?", TOOLS)], SamplingParams(max_new_tokens=200))[
        0
    ]
    assert completion.completion_ids == generated
    assert completion.finish_reason == "stop"
    assert completion.logprobs == [scripted_logprob(k) for k in range(len(generated))]
    assert completion.text == text
    assert [(c.name, c.arguments) for c in completion.tool_calls] == [
        ("get_order", {"order_id": "O-1"})
    ]
    assert completion.completion_tokens == len(generated)
    # The turn is already closed: only the separator follows.
    assert renderer.close_turn_ids(generated, "stop") == renderer.separator_ids


def test_the_length_limit_gives_finish_reason_length_and_an_open_turn(model, llm):
    words = model.renderer.encode(" order" * 20)
    llm.script = lambda prompt: words
    completion = model.chat([_request("Talk.")], SamplingParams(max_new_tokens=4))[0]
    assert completion.completion_ids == words[:4]
    assert completion.finish_reason == "length"
    assert completion.logprobs == [scripted_logprob(k) for k in range(4)]
    eot = model.renderer.end_of_turn_id
    assert model.renderer.close_turn_ids(words[:4], "length")[0] == eot


def test_unusable_prompts_are_error_completions_and_never_reach_vllm(model, llm, tokenizer):
    too_long = ChatRequest(messages=_request("x").messages, prompt_ids=[42] * CONTEXT)
    empty = ChatRequest(messages=_request("x").messages, prompt_ids=[])
    fine = _request("Hi.")
    error, blank, ok = model.chat([too_long, empty, fine], GREEDY)
    assert error.failed and str(CONTEXT) in (error.error or "")
    assert error.prompt_tokens == CONTEXT
    assert blank.failed and blank.error == "empty prompt"
    assert not ok.failed and len(ok.completion_ids or []) == GREEDY.max_new_tokens
    prompts, _ = _sent(llm)
    assert prompts == [model.renderer.initial_ids(fine.messages, [])]

    template = (
        "{% if messages[-1].content == 'boom' %}{{ raise_exception('no boom here') }}{% endif %}"
        + tool_chat_template()
    )
    strict = VLLMChatModel(llm, tokenizer, name="strict", template=template)
    calls = len(llm.generate_calls)
    [bad] = strict.chat([ChatRequest(messages=[Message(role="user", content="boom")])], GREEDY)
    assert bad.failed and "no boom here" in (bad.error or "")
    assert len(llm.generate_calls) == calls  # nothing left to generate for: no call at all


def test_an_aborted_request_is_an_error_completion(model, llm):
    def abort_all(prompts, sampling_params, *, use_tqdm=True):
        return [
            RequestOutput(
                "0", p["prompt_token_ids"], [CompletionOutput(0, "", [], None, [], "abort")]
            )
            for p in prompts
        ]

    llm.generate = abort_all  # type: ignore[method-assign]
    [completion] = model.chat([_request("Hi.")], GREEDY)
    assert completion.failed and "abort" in (completion.error or "")


def test_load_weights_passes_every_tensor_through_then_resets_the_prefix_cache(model, llm):
    weights = {
        "model.embed_tokens.weight": torch.randn(4, 3),
        "model.layers.0.self_attn.q_proj.weight": torch.randn(3, 3),
        "model.norm.weight": torch.ones(3),
    }
    model.load_weights((name, tensor) for name, tensor in weights.items())  # a generator
    assert [name for name, _ in llm.worker_model.loaded] == list(weights)
    assert all(t is weights[name] for name, t in llm.worker_model.loaded)  # no copies
    assert llm.events == ["load_weights", "reset_prefix_cache"]


def test_a_sleeping_engine_is_woken_before_it_loads_or_generates(model, llm):
    model.sleep()
    model.load_weights([("model.norm.weight", torch.ones(3))])
    model.sleep(level=2)
    model.chat([_request("Hi.")], GREEDY)
    model.chat([_request("Hi.")], GREEDY)
    assert llm.events == [
        "sleep(1)",
        "wake_up",
        "load_weights",
        "reset_prefix_cache",
        "sleep(2)",
        "wake_up",
        "generate",
        "generate",
    ]


def _model_dir(tokenizer_dir: Path, tmp_path: Path) -> Path:
    for item in tokenizer_dir.iterdir():
        (tmp_path / item.name).write_bytes(item.read_bytes())
    GenerationConfig(eos_token_id=[2, 7]).save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize("before", [None, "1"])
def test_load_vllm_model_builds_one_in_process_engine(
    built, tokenizer_dir, tmp_path, monkeypatch, before
):
    if before is None:
        monkeypatch.delenv(MULTIPROCESSING, raising=False)
    else:
        monkeypatch.setenv(MULTIPROCESSING, before)
    path = _model_dir(tokenizer_dir, tmp_path)
    model = load_vllm_model(
        path, gpu_memory_utilization=0.25, max_model_len=512, template=tool_chat_template(), seed=3
    )
    [llm] = built
    assert llm.model == str(path)
    assert llm.kwargs == {
        "tokenizer": str(path),
        "dtype": "bfloat16",
        "gpu_memory_utilization": 0.25,
        "max_model_len": 512,
        "enable_sleep_mode": False,
        "seed": 3,
        "tensor_parallel_size": 1,
        "logprobs_mode": "processed_logprobs",
    }
    assert llm.multiprocessing_at_init == "0"
    assert os.environ.get(MULTIPROCESSING) == before  # put back afterwards
    assert model.name == f"vllm:{path}"
    assert model.max_context == 512
    assert model.renderer.template == tool_chat_template()
    # The generation config's eos ids are stop ids too.
    assert model.stop_ids == sorted({model.renderer.end_of_turn_id, 2, 7})


def test_registry_builds_vllm_models_and_policies_from_a_spec(built, tokenizer_dir, tmp_path):
    path = _model_dir(tokenizer_dir, tmp_path)
    model = load_chat_model(f"vllm:{path}", dtype="float16")
    assert isinstance(model, VLLMChatModel) and model.name == f"vllm:{path}"
    assert built[-1].kwargs["dtype"] == "float16"
    policy = load_policy(f"vllm:{path}", GREEDY)
    assert isinstance(policy, ModelPolicy) and isinstance(policy.model, VLLMChatModel)
    with pytest.raises(SpecError, match="vllm:<path>"):
        load_chat_model("vlm:typo")
    with pytest.raises(SpecError, match="vllm:<path>"):
        load_policy("vlm:typo", GREEDY)


def test_without_vllm_installed_the_error_says_how_to_install_it(
    monkeypatch, tmp_path, llm, tokenizer
):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(ModelLoadError, match=re.escape('pip install -e ".[vllm]"')):
        load_vllm_model(tmp_path)
    with pytest.raises(ModelLoadError, match="CUDA"):
        load_chat_model(f"vllm:{tmp_path}")
    with pytest.raises(ModelLoadError, match="vllm package"):
        VLLMChatModel(llm, tokenizer, name="no-vllm")
