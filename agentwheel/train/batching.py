"""From token sequences to padded micro-batches, grouped by length to waste little padding.

A `TrainSequence` is what both trainers consume: the ids of an episode, the loss mask
(1 exactly on agent-generated tokens), the sampler's log-probs when known, and the
sequence's advantage (GRPO). A `MicroBatch` holds them shifted for next-token
prediction: `targets[:, t]` is the token after `input_ids[:, t]`, and every per-token
tensor (`target_mask`, `sampling_logprobs`) is aligned with `targets`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from agentwheel.envs.trajectory import TokenTrace
from agentwheel.llm.kv_cache import common_prefix_length


@dataclass(frozen=True)
class TrainSequence:
    ids: list[int]
    loss_mask: list[int]
    sampling_logprobs: list[float] | None = None
    advantage: float = 0.0

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.loss_mask):
            raise ValueError(f"{len(self.ids)} ids but {len(self.loss_mask)} loss-mask entries")
        if self.sampling_logprobs is not None and len(self.sampling_logprobs) != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but {len(self.sampling_logprobs)} logprobs")

    @classmethod
    def from_trace(
        cls, trace: TokenTrace, advantage: float = 0.0, max_len: int | None = None
    ) -> TrainSequence:
        """A trace as a training sequence, cut to `max_len` tokens. The sampler's log-probs
        count as known when any generated token has a non-zero one (a trace from a model
        that returned none has 0.0 everywhere)."""
        end = len(trace.ids) if max_len is None else min(len(trace.ids), max_len)
        known = any(lp != 0.0 for lp, m in zip(trace.logprobs, trace.loss_mask, strict=True) if m)
        return cls(
            ids=list(trace.ids[:end]),
            loss_mask=list(trace.loss_mask[:end]),
            sampling_logprobs=list(trace.logprobs[:end]) if known else None,
            advantage=advantage,
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_trained_tokens(self) -> int:
        """Tokens that get a loss: mask 1, and not the first token (nothing predicts it)."""
        return sum(self.loss_mask[1:])


@dataclass
class MicroBatch:
    input_ids: Tensor  # [B, T] long
    attention_mask: Tensor  # [B, T] long, 0 on padding
    targets: Tensor  # [B, T] long, the next token of each input position
    target_mask: Tensor  # [B, T] bool, true where the target is an agent token
    sampling_logprobs: Tensor  # [B, T] float32, 0.0 where unknown
    has_sampling_logprobs: Tensor  # [B] bool
    advantages: Tensor  # [B] float32
    index: list[int]  # position of each row in the list the batch was built from
    # Leading input positions identical in every row: computed once for the whole batch.
    prefix_len: int = 0

    @property
    def num_tokens(self) -> int:
        return int(self.target_mask.sum())

    @property
    def num_real_tokens(self) -> int:
        """Non-padding positions."""
        return int(self.attention_mask.sum())

    def to(self, device: torch.device) -> MicroBatch:
        return MicroBatch(
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            targets=self.targets.to(device),
            target_mask=self.target_mask.to(device),
            sampling_logprobs=self.sampling_logprobs.to(device),
            has_sampling_logprobs=self.has_sampling_logprobs.to(device),
            advantages=self.advantages.to(device),
            index=self.index,
            prefix_len=self.prefix_len,
        )


def group_by_length(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices split into groups whose padded size (rows x longest) fits `max_tokens`.

    Longest first, so a batch that does not fit in memory fails on the first micro-batch;
    ties keep input order, so grouping is deterministic. A sequence longer than
    `max_tokens` gets a group of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        # Sorted longest first, so a group's padded length is its first member's.
        if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= max_tokens:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def collate(
    sequences: Sequence[TrainSequence], index: list[int], pad_id: int = 0, prefix_len: int = 0
) -> MicroBatch:
    """Right-pad the sequences into one micro-batch of shifted inputs and targets."""
    rows = [sequences[i] for i in index]
    width = max(len(s) for s in rows) - 1
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    targets = torch.full(shape, pad_id, dtype=torch.long)
    target_mask = torch.zeros(shape, dtype=torch.bool)
    sampling_logprobs = torch.zeros(shape, dtype=torch.float32)
    for row, s in enumerate(rows):
        n = len(s) - 1
        ids = torch.tensor(s.ids, dtype=torch.long)
        input_ids[row, :n] = ids[:-1]
        attention_mask[row, :n] = 1
        targets[row, :n] = ids[1:]
        target_mask[row, :n] = torch.tensor(s.loss_mask[1:], dtype=torch.bool)
        if s.sampling_logprobs is not None:
            sampling_logprobs[row, :n] = torch.tensor(s.sampling_logprobs[1:])
    return MicroBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        targets=targets,
        target_mask=target_mask,
        sampling_logprobs=sampling_logprobs,
        has_sampling_logprobs=torch.tensor([s.sampling_logprobs is not None for s in rows]),
        advantages=torch.tensor([s.advantage for s in rows], dtype=torch.float32),
        index=list(index),
        prefix_len=prefix_len,
    )


def make_micro_batches(
    sequences: Sequence[TrainSequence],
    max_tokens: int,
    pad_id: int = 0,
    share_prefixes: bool = False,
) -> list[MicroBatch]:
    """All sequences (each of at least 2 tokens) as length-grouped, padded micro-batches.

    With `share_prefixes`, sequences that open with the same prompt (the ids before the
    first trained token: a GRPO group's rollouts) are batched together and their common
    prefix is computed once (`MicroBatch.prefix_len`); the token budget counts it once."""
    if any(len(s) < 2 for s in sequences):
        raise ValueError("every sequence needs at least 2 tokens (an input and a target)")
    if not share_prefixes:
        groups = group_by_length([len(s) - 1 for s in sequences], max_tokens)
        return [collate(sequences, group, pad_id) for group in groups]
    batches = []
    for members in _same_opening(sequences):
        prefix = common_prefix_len([sequences[i].ids[:-1] for i in members])
        suffixes = [len(sequences[i]) - 1 - prefix for i in members]
        for group in group_by_length(suffixes, max(max_tokens - prefix, 1)):
            index = [members[i] for i in group]
            shared = prefix if len(index) > 1 else 0
            batches.append(collate(sequences, index, pad_id, prefix_len=shared))
    return batches


def _same_opening(sequences: Sequence[TrainSequence]) -> list[list[int]]:
    """Indices grouped by opening prompt, in order of first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(sequences):
        first_trained = next((t for t, m in enumerate(s.loss_mask) if m), len(s))
        groups.setdefault(tuple(s.ids[:first_trained]), []).append(i)
    return list(groups.values())


def common_prefix_len(rows: Sequence[Sequence[int]]) -> int:
    """Leading positions equal in every row, leaving each row at least one of its own."""
    shortest = min(len(r) for r in rows)
    return min([shortest - 1, *(common_prefix_length(rows[0], r) for r in rows[1:])])


def padding_fraction(batches: Sequence[MicroBatch]) -> float:
    """Share of computed positions that are padding."""
    total = sum(b.input_ids.numel() for b in batches)
    return 1.0 - sum(b.num_real_tokens for b in batches) / total if total else 0.0
