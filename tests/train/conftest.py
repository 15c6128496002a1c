"""Tiny random-weight models and synthetic token traces for the trainer tests."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from agentwheel.envs.trajectory import RewardBreakdown, TokenTrace, Trajectory
from agentwheel.llm.hf import HFChatModel

VOCAB = 101


def tiny_model(seed: int = 0, dropout: float = 0.0) -> LlamaForCausalLM:
    """A 2-layer Llama with a 101-token vocabulary: ~20k parameters, random weights."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        attention_dropout=dropout,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def require_bundled_gguf() -> None:
    """Skip the test when the default model's GGUF (tokenizer of the `tiny` model) is absent."""
    from agentwheel.llm.default_model import DefaultModelMissing, gguf_path

    try:
        gguf_path()
    except DefaultModelMissing as exc:
        pytest.skip(str(exc))


def tiny_chat_model(seed: int = 0) -> HFChatModel:
    """The schedule's `tiny` model: a random-weight Llama with SmolLM2's tokenizer."""
    from agentwheel.settings.model import ModelSettings
    from agentwheel.train.model_factory import build_tiny_model

    require_bundled_gguf()
    return build_tiny_model(ModelSettings(spec="tiny"), seed=seed)


def make_trace(
    segments: list[tuple[list[int], int]], logprobs: list[float] | None = None
) -> TokenTrace:
    """A trace from (ids, mask) segments: mask 1 segments are 'generated' by the agent."""
    trace = TokenTrace()
    for ids, mask in segments:
        if mask:
            trace.add_generated(ids, None)
        else:
            trace.add_context(ids)
    if logprobs is not None:
        trace.logprobs = list(logprobs)
    return trace


def random_trace(rng: random.Random, turns: int = 3, max_segment: int = 8) -> TokenTrace:
    """Prompt, then alternating agent / tool-or-user segments of random ids and lengths."""
    segments = [([rng.randrange(VOCAB) for _ in range(rng.randint(3, max_segment))], 0)]
    for _ in range(turns):
        segments.append(([rng.randrange(VOCAB) for _ in range(rng.randint(1, max_segment))], 1))
        segments.append(([rng.randrange(VOCAB) for _ in range(rng.randint(1, max_segment))], 0))
    return make_trace(segments)


def make_trajectory(
    trace: TokenTrace, passed: bool, task_id: str = "t0", trial: int = 0
) -> Trajectory:
    return Trajectory(
        task_id=task_id,
        trial=trial,
        domain="toy",
        branch_kind="happy",
        policy="tiny",
        backend="mock",
        messages=[],
        tokens=trace,
        reward=RewardBreakdown(passed=passed, state_matches=passed, hack_action_ran=False),
        termination="user_ended",
    )


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """The test machine is shared: tiny models gain nothing from more threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _few_threads():
    with one_torch_thread():
        yield
