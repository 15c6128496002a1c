"""Where a batch's ids sit while it is prefilled: the columns of each row's cached prefix
and new ids (`Columns`), the groups of rows whose new ids share one forward pass
(`prefill_groups`), and the prefixes several prompts share, nested (`branch_points`).
`agentwheel.llm.kv_generation` generates over this layout."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from agentwheel.llm.kv_cache import common_prefix_length

# A prefix at least this long shared by two prompts of a batch is computed once for both.
MIN_SHARED_PREFIX = 16


def branch_points(prefixes: Sequence[list[int]]) -> list[list[int]]:
    """`prefixes` plus every beginning (at least `MIN_SHARED_PREFIX` ids) that two of
    them share, once each, shortest first: the nodes of their prefix tree where
    branches part. In sorted order, the common beginning of any two is that of two
    neighbours between them, so neighbours suffice."""
    ordered = sorted(prefixes)
    nodes = {tuple(ids) for ids in ordered}
    for a, b in itertools.pairwise(ordered):
        length = common_prefix_length(a, b)
        if length >= MIN_SHARED_PREFIX:
            nodes.add(tuple(a[:length]))
    return [list(ids) for ids in sorted(nodes, key=len)]


# Fixed cost of one prefill forward pass, in token positions: reading every weight once
# plus the copies of its rows' keys/values (~0.1-0.2 s in float32 on 2 cores, where a
# position costs ~3.5 ms).
PREFILL_GROUP_COST_POSITIONS = 48


@dataclass(frozen=True)
class PrefillGroup:
    """Rows (ascending batch indices) whose new ids go through one forward pass, over
    the last `new_width` prompt columns."""

    rows: torch.Tensor
    new_width: int
    new_lengths: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.new_lengths)

    @property
    def positions(self) -> int:
        return len(self) * self.new_width

    @property
    def index(self) -> slice | torch.Tensor:
        """The rows as a slice when they are consecutive (views instead of copies)."""
        first, count = int(self.rows[0]), len(self)
        if int(self.rows[-1]) - first + 1 == count:
            return slice(first, first + count)
        return self.rows

    def new_mask(self, device: torch.device) -> torch.Tensor:
        """(rows, new_width) True on each row's new ids among the pass's columns."""
        lengths = torch.tensor(self.new_lengths, device=device)
        return torch.arange(self.new_width, device=device) >= self.new_width - lengths[:, None]


def prefill_groups(
    new_lengths: Sequence[int], pass_cost: int | None = PREFILL_GROUP_COST_POSITIONS
) -> list[PrefillGroup]:
    """Rows split into groups of similar new length: the split that computes the fewest
    positions (each group padded to its longest row), counting `pass_cost` positions for
    each pass; an exact partition of the rows sorted by length (quadratic in the rows, a
    batch holds at most a few dozen). `pass_cost=None`: one group of every row."""
    if pass_cost is None:
        every_row = torch.arange(len(new_lengths))
        return [PrefillGroup(every_row, max(new_lengths), tuple(new_lengths))]
    order = sorted(range(len(new_lengths)), key=lambda row: -new_lengths[row])
    best = [0] + [0] * len(order)  # best[j]: the cheapest split of order[:j]
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        best[end], cut[end] = min(
            (
                best[start] + new_lengths[order[start]] * (end - start) + pass_cost,
                start,
            )
            for start in range(end)
        )
    groups: list[PrefillGroup] = []
    end = len(order)
    while end > 0:
        start = cut[end]
        rows = sorted(order[start:end])
        groups.append(
            PrefillGroup(
                rows=torch.tensor(rows, dtype=torch.long),
                new_width=new_lengths[order[start]],
                new_lengths=tuple(new_lengths[row] for row in rows),
            )
        )
        end = start
    return groups[::-1]


class Columns:
    """Where each row's ids sit in the cache: its prompt right-aligned in the first
    `width` columns (cached prefix, then new ids), then the generated ids, in the same
    columns for every row. Each prefill group's forward pass covers the last
    `new_width` prompt columns of its longest new segment."""

    def __init__(self, cached_lengths: Sequence[int], new_lengths: Sequence[int]):
        self.cached_lengths = list(cached_lengths)
        self.new_lengths = list(new_lengths)
        self.lengths = [c + n for c, n in zip(cached_lengths, new_lengths, strict=True)]
        self.width = max(self.lengths, default=0)
        self.new_width = max(new_lengths, default=0)

    @property
    def rows(self) -> int:
        return len(self.lengths)

    def row_span(self, row: int) -> tuple[int, int]:
        """The columns of the row's prompt."""
        return self.width - self.lengths[row], self.width

    def cached_span(self, row: int) -> tuple[int, int]:
        start, _ = self.row_span(row)
        return start, start + self.cached_lengths[row]

    def prompt_mask(self) -> torch.Tensor:
        """(rows, width) 1 where a row has a prompt id, 0 on its padding."""
        lengths = torch.tensor(self.lengths)
        return (torch.arange(self.width) >= self.width - lengths[:, None]).long()
