"""Key/value states of token prefixes kept between `chat` calls, looked up by their ids.

An agent episode sends its whole conversation every turn, and each turn's prompt extends
the previous one (token-in, token-out). `PrefixKVCache` keeps the attention keys and
values a model computed for a sequence of ids, so the next request that starts with
those ids only computes its new tokens. Lookup is by longest common prefix over all
entries, which also lets episodes that open with the same system prompt and tools share
it. Nothing has to tell the cache that an episode ended: an entry is dropped when a
longer sequence that extends it is added, and the least recently used entries are
evicted once the cache holds more than `max_tokens` tokens.

The cached states are only valid for the weights they were computed with;
`weights_fingerprint` lets the owner notice a weight update and `clear` the cache.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

# Per layer: (keys, values), each (kv_heads, length, head_dim).
LayerStates = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class CachedPrefix:
    ids: torch.Tensor  # (length,) int64, on the CPU
    layers: LayerStates

    @property
    def length(self) -> int:
        return int(self.ids.numel())

    def cropped(self, length: int) -> LayerStates:
        """The states of the first `length` ids (views, no copy)."""
        return [(k[:, :length], v[:, :length]) for k, v in self.layers]


def common_prefix_length(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(a.numel(), b.numel())
    differs = (a[:n] != b[:n]).nonzero()
    return int(differs[0, 0]) if differs.numel() else n


class PrefixKVCache:
    """Cached states of id sequences, at most `max_tokens` ids' worth, least recently
    used evicted first. Entries form an antichain: none is a prefix of another."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self._entries: OrderedDict[int, CachedPrefix] = OrderedDict()
        self._keys = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def tokens(self) -> int:
        return sum(entry.length for entry in self._entries.values())

    def entries(self) -> list[CachedPrefix]:
        """The entries, least recently used first."""
        return list(self._entries.values())

    def match(self, ids: Sequence[int]) -> tuple[CachedPrefix | None, int]:
        """The entry sharing the longest prefix with `ids` and that prefix's length, at
        most `len(ids) - 1` so that at least one token is left to compute (its logits
        are the next-token distribution). `(None, 0)` when nothing is shared."""
        query = torch.tensor(ids, dtype=torch.long)
        best: tuple[int, int] | None = None
        for key, entry in self._entries.items():
            shared = min(common_prefix_length(entry.ids, query), len(ids) - 1)
            if shared > 0 and (best is None or shared > best[1]):
                best = (key, shared)
        if best is None:
            return None, 0
        self._entries.move_to_end(best[0])
        return self._entries[best[0]], best[1]

    def add(self, ids: Sequence[int], layers: LayerStates) -> None:
        """Keep the states of `ids`, replacing entries that `ids` extends."""
        new = torch.tensor(ids, dtype=torch.long)
        if new.numel() == 0 or new.numel() > self.max_tokens:
            return
        for key, entry in list(self._entries.items()):
            shared = common_prefix_length(entry.ids, new)
            if shared == new.numel():
                self._entries.move_to_end(key)  # already held, perhaps inside a longer entry
                return
            if shared == entry.length:
                del self._entries[key]
        self._entries[next(self._keys)] = CachedPrefix(new, layers)
        total = self.tokens
        while total > self.max_tokens:
            _, evicted = self._entries.popitem(last=False)
            total -= evicted.length

    def clear(self) -> None:
        self._entries.clear()


@torch.no_grad()
def weights_fingerprint(model: nn.Module) -> torch.Tensor:
    """One float per parameter (its sum): changes whenever training or a weight copy
    changes the weights, including copies through `.data` that bypass the version counter.
    Reads every weight once, which is small next to a generation call."""
    sums = [p.detach().sum(dtype=torch.float32) for p in model.parameters()]
    return torch.stack(sums).cpu() if sums else torch.zeros(0)
