"""Keys/values kept across chat calls give what re-reading every prompt gives.

The reference is `HFChatModel(kv_reuse=False)` (`model.generate` on whole prompts), on
the same tiny float32 model.
"""

from __future__ import annotations

import pytest
import torch

from agentwheel.core.messages import ChatRequest, Completion, Message, SamplingParams
from agentwheel.llm.hf import HFChatModel
from agentwheel.llm.kv_cache import PrefixKVCache, common_prefix_length
from agentwheel.llm.kv_generation import supports_prefix_reuse
from agentwheel.llm.prefill_layout import prefill_groups
from tests.llm.conftest import build_tiny_model

GREEDY = SamplingParams(max_new_tokens=10)
SAMPLED = SamplingParams(max_new_tokens=10, temperature=0.8, top_p=0.9, seed=3)


def _opening(model: HFChatModel, index: int) -> list[int]:
    messages = [
        Message(role="system", content="You help customers of Northwind Home with orders."),
        Message(role="user", content="order " * (3 * index + 1) + f"number {index}?"),
    ]
    return model.renderer.initial_ids(messages, [])


def _next_prompt(model: HFChatModel, prompt: list[int], done: Completion, turn: int) -> list[int]:
    ids = done.completion_ids or []
    reply = Message(role="user", content="more " * (turn + 1) + "please")
    return (
        prompt
        + ids
        + model.renderer.close_turn_ids(ids, done.finish_reason)
        + model.renderer.continuation_ids([reply])
    )


def _episodes(
    model: HFChatModel, params: SamplingParams, lengths: list[int]
) -> list[list[Completion]]:
    """Episode i runs `lengths[i]` turns; every call batches the episodes still running."""
    return _episodes_from(
        model, params, {i: _opening(model, i) for i in range(len(lengths))}, lengths
    )


def _episodes_from(
    model: HFChatModel, params: SamplingParams, prompts: dict[int, list[int]], lengths: list[int]
) -> list[list[Completion]]:
    prompts = dict(prompts)
    turns: list[list[Completion]] = [[] for _ in lengths]
    for turn in range(max(lengths)):
        live = [i for i in prompts if turn < lengths[i]]
        batch = [ChatRequest(messages=[], prompt_ids=prompts[i]) for i in live]
        for i, done in zip(live, model.chat(batch, params), strict=True):
            turns[i].append(done)
            prompts[i] = _next_prompt(model, prompts[i], done, turn)
    return turns


def _pair(tiny_model, tokenizer, **kwargs) -> tuple[HFChatModel, HFChatModel]:
    plain = HFChatModel(tiny_model, tokenizer, name="tiny", kv_reuse=False, **kwargs)
    reuse = HFChatModel(tiny_model, tokenizer, name="tiny", kv_reuse=True, **kwargs)
    return plain, reuse


def _assert_same(
    expected: list[list[Completion]], got: list[list[Completion]], abs_logprob: float = 1e-4
) -> None:
    for want_turns, got_turns in zip(expected, got, strict=True):
        assert len(want_turns) == len(got_turns)
        for want, have in zip(want_turns, got_turns, strict=True):
            assert have.completion_ids == want.completion_ids
            assert have.finish_reason == want.finish_reason
            assert have.logprobs == pytest.approx(want.logprobs, abs=abs_logprob)


def test_the_tiny_model_supports_reuse(tiny_model, tokenizer):
    assert supports_prefix_reuse(tiny_model)
    plain, reuse = _pair(tiny_model, tokenizer)
    assert reuse.kv_reuse and not plain.kv_reuse


@pytest.mark.parametrize("params", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
@pytest.mark.parametrize("max_batch_size", [3, 8])
def test_multi_turn_batched_episodes_match_reprefill(tiny_model, tokenizer, params, max_batch_size):
    plain, reuse = _pair(tiny_model, tokenizer, max_batch_size=max_batch_size)
    lengths = [4, 1, 3, 2, 4]  # episodes end at different turns
    expected = _episodes(plain, params, lengths)
    got = _episodes(reuse, params, lengths)
    _assert_same(expected, got)
    generator = reuse.prefix_reuse
    assert generator is not None
    # Later turns came from the cache: far fewer ids went through the model than were sent.
    sent = sum(c.prompt_tokens for turns in got for c in turns)
    assert generator.reused_tokens > sent / 2
    # The continuations differ, so matching them is not vacuous.
    assert len({tuple(t[0].completion_ids or []) for t in got}) == len(lengths)


@pytest.mark.parametrize("params", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_rows_that_finish_early_leave_the_batch_and_still_match_reprefill(
    tiny_model, tokenizer, params
):
    plain, reuse = _pair(tiny_model, tokenizer, max_batch_size=8)
    # One id in five ends a reply, so the rows of a batch stop at different steps.
    stops = [i for i in range(tokenizer.vocab_size) if i % 5 == 0]
    plain.stop_ids = reuse.stop_ids = stops
    lengths = [3, 3, 2, 3, 1, 3, 2, 3]
    expected = _episodes(plain, params, lengths)
    got = _episodes(reuse, params, lengths)
    _assert_same(expected, got)
    generator = reuse.prefix_reuse
    assert generator is not None
    assert generator.rows_left_early > 0
    finishes = {c.finish_reason for turns in got for c in turns}
    assert finishes == {"stop", "length"}
    # Later turns continued from states kept when their rows left the batch early.
    sent = sum(c.prompt_tokens for turns in got for c in turns)
    assert generator.reused_tokens > sent / 2


def test_a_group_of_identical_prompts_shares_one_prefill(tiny_model, tokenizer):
    plain, reuse = _pair(tiny_model, tokenizer)
    prompt = _opening(plain, 2)
    group = [ChatRequest(messages=[], prompt_ids=prompt) for _ in range(4)]
    expected = plain.chat(group, SAMPLED)
    got = reuse.chat(group, SAMPLED)
    _assert_same([expected], [got])
    assert reuse.prefix_reuse is not None
    # The shared prompt is computed once (all but its last id), then each row adds one id.
    assert reuse.prefix_reuse.reused_tokens == 4 * (len(prompt) - 1)


def test_a_prompt_that_does_not_extend_the_cached_one_falls_back(tiny_model, tokenizer):
    plain, reuse = _pair(tiny_model, tokenizer)
    first = _opening(plain, 1)
    done = reuse.chat([ChatRequest(messages=[], prompt_ids=first)], GREEDY)[0]
    follow = _next_prompt(plain, first, done, 0)
    # An edited history: same opening, then other ids than the ones generated.
    keep = len(first) + 2
    edited = follow[:keep] + [t + 1 for t in follow[keep : keep + 3]] + follow[keep + 3 :]
    unrelated = [42, 43, 44, *follow[3:]]
    for prompt in (edited, unrelated, follow):
        request = [ChatRequest(messages=[], prompt_ids=prompt)]
        assert reuse.prefix_reuse is not None
        before = reuse.prefix_reuse.reused_tokens
        got, want = reuse.chat(request, GREEDY)[0], plain.chat(request, GREEDY)[0]
        assert got.completion_ids == want.completion_ids
        assert got.logprobs == pytest.approx(want.logprobs, abs=1e-4)
        reused = reuse.prefix_reuse.reused_tokens - before
        # A prompt that does not extend a cached sequence is computed in full, even where
        # it shares a beginning with one; `follow` extends the first turn's sequence.
        assert reused == (
            len(first) + len(done.completion_ids or []) - 1 if prompt is follow else 0
        )


def test_cached_states_of_finished_episodes_are_released(tiny_model, tokenizer):
    reuse = HFChatModel(tiny_model, tokenizer, name="tiny")
    _episodes(reuse, GREEDY, [3, 3])
    # Each turn's entry replaced the one it extended: one entry per episode.
    assert len(reuse.kv_cache) == 2
    lengths = {entry.length for entry in reuse.kv_cache.entries()}
    small = HFChatModel(tiny_model, tokenizer, name="tiny", kv_cache_tokens=max(lengths) + 5)
    _episodes(small, GREEDY, [3, 3])
    # The budget holds one episode: the least recently used one was evicted.
    assert len(small.kv_cache) == 1 and small.kv_cache.tokens <= small.kv_cache.max_tokens
    reuse.release_kv_cache()
    assert len(reuse.kv_cache) == 0 and reuse.kv_cache.tokens == 0


def test_a_weight_update_invalidates_the_cache(tokenizer):
    model = build_tiny_model(len(tokenizer), seed=1)
    plain = HFChatModel(model, tokenizer, name="tiny", kv_reuse=False)
    reuse = HFChatModel(model, tokenizer, name="tiny")
    prompt = _opening(plain, 3)
    request = [ChatRequest(messages=[], prompt_ids=prompt)]
    before = reuse.chat(request, GREEDY)[0]
    assert len(reuse.kv_cache) == 1
    with torch.no_grad():
        for p in model.parameters():
            # `.data` writes bypass the version counter, as `copy_named_weights` does.
            p.data.copy_(p.data * 1.5)
    after, want = reuse.chat(request, GREEDY)[0], plain.chat(request, GREEDY)[0]
    assert after.completion_ids == want.completion_ids != before.completion_ids
    assert after.logprobs == pytest.approx(want.logprobs, abs=1e-4)


def test_prefix_cache_matches_the_longest_shared_prefix_and_keeps_one_id_to_compute():
    cache = PrefixKVCache(max_tokens=100)
    states = [(torch.zeros(1, 6, 2), torch.zeros(1, 6, 2))]
    cache.add([1, 2, 3, 4, 5, 6], states)
    assert cache.match([1, 2, 3, 9])[1] == 3
    assert cache.match([1, 2, 3, 4, 5, 6])[1] == 5  # the last id's logits are needed
    assert cache.match([7, 1, 2]) == (None, 0)
    entry, shared = cache.match([1, 2, 3, 4, 5, 6, 7, 8])
    assert entry is not None and shared == 6
    assert [k.shape[1] for k, _ in entry.cropped(4)] == [4]
    # In a later call, only prompts that extend the entry use it.
    cache.begin_call()
    assert cache.match([1, 2, 3, 9]) == (None, 0)
    assert cache.match([1, 2, 3, 4, 5, 6, 7])[1] == 6


def test_prefix_cache_keeps_an_antichain_and_evicts_least_recently_used():
    cache = PrefixKVCache(max_tokens=9)

    def states(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(torch.zeros(1, n, 2), torch.zeros(1, n, 2))]

    cache.add([1, 2, 3], states(3))
    cache.add([1, 2, 3, 4], states(4))  # extends the first: replaces it
    cache.add([1, 2], states(2))  # already held inside the longer one
    assert [e.ids.tolist() for e in cache.entries()] == [[1, 2, 3, 4]]
    cache.add([5, 6, 7], states(3))
    cache.match([1, 2, 3, 4, 9])  # touch: [5, 6, 7] is now the least recently used
    cache.add([8, 9, 10], states(3))
    assert [e.ids.tolist() for e in cache.entries()] == [[1, 2, 3, 4], [8, 9, 10]]
    assert cache.tokens == 7


def _trie_size(prompts: list[list[int]]) -> int:
    """How many distinct prefixes (token positions to compute at least) the prompts have."""
    ordered = sorted(prompts)
    return sum(
        len(p) - (common_prefix_length(p, ordered[i - 1]) if i else 0)
        for i, p in enumerate(ordered)
    )


def test_nested_shared_prefixes_are_computed_once_each(tiny_model, tokenizer):
    # A system prompt, then the same tools in two orders, then requests: the system
    # prompt is shared by all four prompts, each tool order by two.
    system, tools_a, tools_b = list(range(100, 140)), list(range(200, 220)), list(range(300, 320))
    request = list(range(500, 520))
    prompts = [
        system + tools_a + request + [1000],
        system + tools_a + request + [1001, 1002],
        system + tools_b + request + [1003],
        system + tools_b + [1004] * 5,
    ]
    plain, reuse = _pair(tiny_model, tokenizer, max_batch_size=8)
    batch = [ChatRequest(messages=[], prompt_ids=p) for p in prompts]
    one_token = SamplingParams(max_new_tokens=1)
    expected = plain.chat(batch, one_token)
    got = reuse.chat(batch, one_token)
    _assert_same([expected], [got])
    assert reuse.prefix_reuse is not None
    # One generated id each comes from the prefill's logits: every id that went
    # through the model is a distinct prefix position (the system prompt not twice).
    assert reuse.prefix_reuse.computed_tokens == _trie_size(prompts)


def test_prefill_groups_split_rows_of_very_different_new_lengths():
    groups = prefill_groups([500, 10, 12, 480, 11])
    assert [g.rows.tolist() for g in groups] == [[0, 3], [1, 2, 4]]
    assert [g.new_width for g in groups] == [500, 12]
    assert sum(g.positions for g in groups) == 2 * 500 + 3 * 12
    # Similar lengths: one pass, a second would cost more than the padding it saves.
    (single,) = prefill_groups([30, 28, 25, 31])
    assert single.rows.tolist() == [0, 1, 2, 3] and single.new_width == 31
    assert single.index == slice(0, 4)


@pytest.mark.parametrize("params", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_a_batch_with_one_long_new_segment_prefills_in_groups_and_matches_reprefill(
    tiny_model, tokenizer, params
):
    plain, reuse = _pair(tiny_model, tokenizer, max_batch_size=8)
    # Episode 3's request is ~40x longer than the others': its new ids get their own pass.
    lengths = [2, 2, 2, 2]
    prompts = {i: _opening(plain, 40 if i == 3 else i) for i in range(4)}
    expected = _episodes_from(plain, params, prompts, lengths)
    got = _episodes_from(reuse, params, prompts, lengths)
    _assert_same(expected, got)
    generator = reuse.prefix_reuse
    assert generator is not None
    new = [len(p) for p in prompts.values()]
    # Far fewer positions than every row padded to the long request.
    assert generator.prefill_positions < 0.6 * len(new) * max(new)
