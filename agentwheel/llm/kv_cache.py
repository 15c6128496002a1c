"""Key/value states of token prefixes kept between `chat` calls, looked up by their ids.

An agent episode sends its whole conversation every turn, and each turn's prompt extends
the previous one (token-in, token-out). `PrefixKVCache` keeps the attention keys and
values a model computed for a sequence of ids, so the next request that starts with
those ids only computes its new tokens. Within one call (`begin_call`), lookup is by
longest common prefix, which lets episodes that open with the same system prompt and
tools share it. Across calls an entry only serves a prompt that extends it (the
episode's own earlier turns), never a merely shared beginning: a call's outputs then
depend on its prompts and their own history, not on whatever else the cache holds, so a
run resumed from a checkpoint generates what the uninterrupted run did (reused states
differ from recomputed ones by float rounding). Nothing has to tell the cache that an
episode ended: an entry is dropped when a
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
    call: int  # the call that computed it

    @property
    def length(self) -> int:
        return int(self.ids.numel())

    def cropped(self, length: int) -> LayerStates:
        """The states of the first `length` ids (views, no copy)."""
        return [(k[:, :length], v[:, :length]) for k, v in self.layers]


def common_prefix_length(a: torch.Tensor | Sequence[int], b: torch.Tensor | Sequence[int]) -> int:
    """How many leading ids `a` and `b` share."""
    a, b = torch.as_tensor(a, dtype=torch.long), torch.as_tensor(b, dtype=torch.long)
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
        self.call = 0

    def begin_call(self) -> None:
        """Entries added from now on belong to a new call; older ones only serve prompts
        that extend them."""
        self.call += 1

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
        are the next-token distribution). Entries of earlier calls count only when `ids`
        extends them. `(None, 0)` when nothing is shared."""
        query = torch.tensor(ids, dtype=torch.long)
        best: tuple[int, int] | None = None
        for key, entry in self._entries.items():
            shared = common_prefix_length(entry.ids, query)
            if entry.call != self.call and shared < entry.length:
                continue
            shared = min(shared, len(ids) - 1)
            if shared > 0 and (best is None or shared > best[1]):
                best = (key, shared)
        if best is None:
            return None, 0
        self._entries.move_to_end(best[0])
        return self._entries[best[0]], best[1]

    def add(self, ids: Sequence[int], layers: LayerStates) -> None:
        """Keep the states of `ids`, replacing entries that `ids` extends. An entry of an
        earlier call that extends `ids` is dropped too: only states of this call's
        lineage may serve the prompts that follow."""
        new = torch.tensor(ids, dtype=torch.long)
        if new.numel() == 0 or new.numel() > self.max_tokens:
            return
        for key, entry in list(self._entries.items()):
            shared = common_prefix_length(entry.ids, new)
            if shared == entry.length:
                del self._entries[key]
            elif shared == new.numel():
                if entry.call == self.call:
                    self._entries.move_to_end(key)  # already held inside a longer entry
                    return
                del self._entries[key]
        self._entries[next(self._keys)] = CachedPrefix(new, layers, self.call)
        total = self.tokens
        while total > self.max_tokens:
            _, evicted = self._entries.popitem(last=False)
            total -= evicted.length

    def clear(self) -> None:
        self._entries.clear()


@torch.no_grad()
def weights_fingerprint(model: nn.Module) -> torch.Tensor:
    """Per parameter, its version counter and its sum: changes whenever an optimizer step
    runs (even one that leaves the values as they were, so a run resumed from that step's
    checkpoint starts from the same empty cache as the run that was not interrupted) and
    whenever weights are copied in, also through `.data`, which bypasses the counter.
    Reads every weight once, which is small next to a generation call."""
    params = list(model.parameters())
    if not params:
        return torch.zeros(0, dtype=torch.float64)
    versions = torch.tensor([p._version for p in params], dtype=torch.float64)
    sums = torch.stack([p.detach().sum(dtype=torch.float32) for p in params]).cpu()
    return torch.cat([versions, sums.double()])
