"""Batched generation that continues from cached prefixes instead of re-reading prompts.

Each prompt of a batch starts with `c_i` ids whose keys/values a `PrefixKVCache` holds
(0 when none) and has `n_i` new ids to compute. Rows are laid out as a left-padded batch
of whole prompts, the layout `model.generate` uses:

    [ pad | cached_i (c_i) | new_i (n_i) ][ generated ... ]
      W = max (c_i + n_i) columns

The cached states are copied into their columns. The new ids go through the model in
prefill groups: rows of similar `n_i`, each group one forward pass over its rows and
the last `N_g = max n_i` (over the group) of the W columns, writing only each row's
own new columns. One forward over every row would cost `rows x max n_i` token
positions: on an episode's first turn most of a prompt is shared with others, and on
later turns most rows add a short tool result while one adds a long one, so a single
row's long new segment made the whole batch compute it (3.5x the needed positions on
a 48-task held-out batch, measured). Every token gets its true position id (RoPE
positions are those of the unpadded sequence, as in a full re-prefill). The cache is one
preallocated buffer per layer that decoding writes into, rather than a tensor
concatenated at every step. Decoding follows `model.generate`: float32 logits of the last
position, temperature then top-p, softmax and one `torch.multinomial` over the whole
batch per step (greedy: argmax), so a seeded call draws the same random numbers as
`generate` on the same batch. Unlike `generate`, finished rows leave the batch (once a
quarter of it has finished) instead of being fed the pad id until the longest row stops:
in an agent turn most replies are short and one long one kept the whole batch decoding.
Each row's states (prompt plus generated ids, one contiguous slice) go back into the
prefix cache for the episode's next turn when it leaves the batch or decoding ends.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache, TemperatureLogitsWarper, TopPLogitsWarper
from transformers.cache_utils import Cache, DynamicLayer

from agentwheel.core.messages import FinishReason
from agentwheel.llm.kv_cache import CachedPrefix, PrefixKVCache, common_prefix_length
from agentwheel.llm.prefill_layout import (
    MIN_SHARED_PREFIX,
    PREFILL_GROUP_COST_POSITIONS,
    Columns,
    PrefillGroup,
    branch_points,
    prefill_groups,
)

Generated = tuple[list[int], list[float], FinishReason]


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int
    stop_ids: Sequence[int]
    pad_id: int
    temperature: float  # <= 0: greedy
    top_p: float = 1.0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


def supports_prefix_reuse(model: Any) -> bool:
    """Whether `model` can decode from a spliced cache: every layer attends to the whole
    past (no sliding windows, no linear attention) through a mask-driven implementation."""
    config = model.config
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    try:
        layers = DynamicCache(config=config).layers
    except (AttributeError, TypeError, ValueError):
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class _PreallocatedLayer(DynamicLayer):
    """A full-attention cache layer over a buffer of fixed capacity, laid out by
    `Columns`. During the prefill, each group's forward pass (`begin_group`) writes the
    new states of its rows into their new columns only and attends over those rows'
    whole prompts; the buffer is allocated at the first group (its head shape comes
    from the states), with each row's cached prefix copied into its columns. After
    `end_prefill`, updates (decoding) write one column for every row."""

    def __init__(
        self,
        capacity: int,
        columns: Columns,
        past: Sequence[tuple[torch.Tensor, torch.Tensor] | None],
    ):
        super().__init__()
        self.capacity = capacity
        self.columns = columns
        self.past = past
        self.group: PrefillGroup | None = None
        # Counted before the buffer exists: the attention mask is sized from it first.
        self.length = columns.width - columns.new_width

    def begin_group(self, group: PrefillGroup) -> None:
        self.group = group
        self.length = self.columns.width - group.new_width

    def end_prefill(self) -> None:
        self.group = None
        self.length = self.columns.width
        self.keys = self.buffer_k[:, :, : self.length]
        self.values = self.buffer_v[:, :, : self.length]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self._allocate(key_states)
        end = self.length + key_states.shape[-2]
        if self.group is not None:
            return self._write_group(self.group, key_states, value_states)
        self.buffer_k[:, :, self.length : end] = key_states
        self.buffer_v[:, :, self.length : end] = value_states
        self.length = end
        self.keys = self.buffer_k[:, :, :end]
        self.values = self.buffer_v[:, :, :end]
        return self.keys, self.values

    def _write_group(
        self, group: PrefillGroup, key_states: torch.Tensor, value_states: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the group's new states (its left-padded columns hold other ids' states:
        those columns keep what they had) and give its rows' keys/values over the whole
        prompt width."""
        start, end = self.length, self.columns.width
        rows = group.index
        fresh = group.new_mask(key_states.device)[:, None, :, None]
        out = []
        for buffer, states in ((self.buffer_k, key_states), (self.buffer_v, value_states)):
            region = buffer[rows, :, start:end]
            buffer[rows, :, start:end] = torch.where(fresh, states, region)
            out.append(buffer[rows, :, :end])
        return out[0], out[1]

    def _allocate(self, states: torch.Tensor) -> None:
        _, heads, _, dim = states.shape
        shape = (self.columns.rows, heads, self.capacity, dim)
        self.buffer_k = states.new_zeros(shape)
        self.buffer_v = states.new_zeros(shape)
        for row, cached in enumerate(self.past):
            if cached is not None:
                k, v = cached
                start, end = self.columns.cached_span(row)
                self.buffer_k[row, :, start:end] = k
                self.buffer_v[row, :, start:end] = v
        self.past = []
        self.device = states.device
        self.is_initialized = True

    def get_seq_length(self) -> int:
        return self.length

    def keep_rows(self, positions: torch.Tensor) -> None:
        """Drop every row of the buffer but those at `positions`."""
        index = positions.to(self.buffer_k.device)
        self.buffer_k = self.buffer_k.index_select(0, index)
        self.buffer_v = self.buffer_v.index_select(0, index)
        self.keys = self.buffer_k[:, :, : self.length]
        self.values = self.buffer_v[:, :, : self.length]

    def row_states(self, row: int, columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of the row's states in `columns` (ascending column indices)."""
        index = columns.to(self.buffer_k.device)
        return self.buffer_k[row, :, index], self.buffer_v[row, :, index]


def cache_argument(model: Any) -> str:
    """transformers 5 renamed `past_key_values` to `cache` in forward signatures."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class PrefixReusingGenerator:
    """Generates for a batch of prompts, reusing and refilling a `PrefixKVCache`.

    `reused_tokens` and `computed_tokens` count prompt ids served from the cache and
    ids run through the model (prompt and generated), `prefill_positions` the token
    positions the prefill forward passes computed (new ids plus the padding of their
    groups), `rows_left_early` the rows that left
    a batch before its decoding ended, over the generator's lifetime. With
    `leave_early=False` every row stays until the batch ends, as in `generate`; with
    `prefill_in_groups=False` the new ids of all rows go through one forward pass and the
    shared prefixes are computed side by side, not nested (the benchmarks' baselines; the
    ids are the same either way).
    """

    def __init__(self, model: Any, cache: PrefixKVCache):
        self.model = model
        self.cache = cache
        self.num_layers = int(model.config.get_text_config().num_hidden_layers)
        self.cache_argument = cache_argument(model)
        self.reused_tokens = 0
        self.computed_tokens = 0
        self.prefill_positions = 0
        self.rows_left_early = 0
        self.leave_early = True
        self.prefill_in_groups = True

    @property
    def device(self) -> torch.device:
        return torch.device(self.model.device)

    @torch.inference_mode()
    def generate(self, prompts: Sequence[list[int]], decoding: Decoding) -> list[Generated]:
        self.cache.begin_call()
        self._share_common_prefixes(prompts)
        matches = [self.cache.match(ids) for ids in prompts]
        self.reused_tokens += sum(shared for _, shared in matches)
        layers, logits, columns = self._prefill(prompts, matches, decoding.max_new_tokens)
        batch = _DecodeBatch(prompts, layers, columns.prompt_mask())
        results = self._decode(batch, logits, decoding)
        for position, row in enumerate(batch.rows):
            self._keep_states(batch, position, results[row][0])
        return results

    def _keep_states(self, batch: _DecodeBatch, position: int, tokens: list[int]) -> None:
        """Put the states of the row at `position` of the batch (its prompt plus the
        generated `tokens`) into the prefix cache for the episode's next turn."""
        prompt = batch.prompts[batch.rows[position]]
        # The last generated id was never fed back, so it has no states; columns fed
        # after a row's stop id (padding, while other rows decode) are not its own.
        kept = batch.mask[position].nonzero().squeeze(1)[: len(prompt) + len(tokens) - 1]
        states = [layer.row_states(position, kept) for layer in batch.layers]
        self.cache.add(prompt + tokens[:-1], states)

    def _share_common_prefixes(self, prompts: Sequence[list[int]]) -> None:
        """Compute once, and cache, each prefix that several prompts of the batch share
        and the cache does not hold yet (the system prompt and tools of a batch of new
        episodes, the prompt of a group of rollouts of one task). Where those prefixes
        branch from a shorter common one (the same system prompt, then tools in another
        order), the shorter one is computed first, in an earlier pass, so that it is
        computed once rather than once per branch."""
        pending = self._wanted_prefixes(prompts)
        if self.prefill_in_groups:
            pending = branch_points(pending)
        while pending:
            ready = [
                ids
                for ids in pending
                if not self.prefill_in_groups
                or not any(len(o) < len(ids) and ids[: len(o)] == o for o in pending)
            ]
            pending = [ids for ids in pending if ids not in ready]
            ready = [ids for ids in ready if not self._cached_whole(ids)]
            if not ready:
                continue
            matches = [self.cache.match(ids) for ids in ready]
            self.reused_tokens += sum(shared for _, shared in matches)
            layers, _, columns = self._prefill(ready, matches, max_new_tokens=0)
            for row, ids in enumerate(ready):
                kept = torch.arange(*columns.row_span(row))
                self.cache.add(ids, [layer.row_states(row, kept) for layer in layers])

    def _cached_whole(self, ids: list[int]) -> bool:
        """Whether the cache holds the states of every id of `ids` (a match keeps one id
        to compute, so ask for `ids` plus one id no prompt has)."""
        return self.cache.match([*ids, -1])[1] >= len(ids)

    def _wanted_prefixes(self, prompts: Sequence[list[int]]) -> list[list[int]]:
        """Each prompt's longest beginning shared with another prompt (at least
        `MIN_SHARED_PREFIX` ids, leaving one id of the prompt to compute) that the cache
        does not cover, once each."""
        order = sorted(range(len(prompts)), key=lambda i: prompts[i])
        shared = [0] * len(prompts)
        for a, b in itertools.pairwise(order):
            length = common_prefix_length(prompts[a], prompts[b])
            shared[a] = max(shared[a], length)
            shared[b] = max(shared[b], length)
        wanted: dict[tuple[int, ...], None] = {}
        for ids, length in zip(prompts, shared, strict=True):
            length = min(length, len(ids) - 1)
            if length >= MIN_SHARED_PREFIX and self.cache.match(ids)[1] < length:
                wanted[tuple(ids[:length])] = None
        return [list(ids) for ids in wanted]

    def _prefill(
        self,
        prompts: Sequence[list[int]],
        matches: Sequence[tuple[CachedPrefix | None, int]],
        max_new_tokens: int,
    ) -> tuple[list[_PreallocatedLayer], torch.Tensor, Columns]:
        cached = [entry.cropped(shared) if entry else None for entry, shared in matches]
        cached_lengths = [shared for _, shared in matches]
        new = [ids[shared:] for ids, shared in zip(prompts, cached_lengths, strict=True)]
        columns = Columns(cached_lengths, [len(ids) for ids in new])
        capacity = columns.width + max_new_tokens
        layers = [
            _PreallocatedLayer(capacity, columns, [c[layer] if c else None for c in cached])
            for layer in range(self.num_layers)
        ]
        mask = columns.prompt_mask()
        groups = prefill_groups(
            columns.new_lengths, PREFILL_GROUP_COST_POSITIONS if self.prefill_in_groups else None
        )
        last_logits: list[tuple[torch.Tensor, torch.Tensor]] = []
        for group in groups:
            for layer in layers:
                layer.begin_group(group)
            rows, width = group.rows.tolist(), group.new_width
            input_ids = torch.full((len(rows), width), 0, dtype=torch.long)
            positions = torch.zeros((len(rows), width), dtype=torch.long)
            for i, row in enumerate(rows):
                ids, shared = new[row], cached_lengths[row]
                input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                positions[i, width - len(ids) :] = torch.arange(shared, shared + len(ids))
            logits = self._forward(input_ids, positions, mask[group.rows], layers, 1)
            last_logits.append((group.rows, logits[:, -1]))
        for layer in layers:
            layer.end_prefill()
        self.computed_tokens += sum(len(ids) for ids in new)
        self.prefill_positions += sum(group.positions for group in groups)
        first = last_logits[0][1]
        out = first.new_empty((columns.rows, first.shape[-1]))
        for rows_of_group, logits in last_logits:
            out[rows_of_group] = logits
        return layers, out, columns

    def _forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor,
        layers: list[_PreallocatedLayer],
        logits_to_keep: int,
    ) -> torch.Tensor:
        out = self.model(
            input_ids=input_ids.to(self.device),
            position_ids=positions.to(self.device),
            attention_mask=mask.to(self.device),
            use_cache=True,
            logits_to_keep=logits_to_keep,
            **{self.cache_argument: Cache(layers=list(layers))},
        )
        return out.logits[:, -logits_to_keep:].to(dtype=torch.float32)

    def _decode(
        self, batch: _DecodeBatch, logits: torch.Tensor, decoding: Decoding
    ) -> list[Generated]:
        """One id per live row and forward pass. A row that has finished leaves the batch
        (its states go to the prefix cache first) once a quarter of the batch has
        finished, so the rows still decoding are not slowed by the finished ones."""
        total = len(batch.rows)
        warpers = _warpers(decoding)
        stops = torch.tensor(list(decoding.stop_ids), device=logits.device)
        live = torch.ones(total, dtype=torch.bool, device=logits.device)
        positions = torch.tensor([len(ids) for ids in batch.prompts], dtype=torch.long)
        tokens_of: list[list[int]] = [[] for _ in range(total)]
        logprobs_of: list[list[float]] = [[] for _ in range(total)]
        temperature = 1.0 if decoding.greedy else decoding.temperature
        tokens = torch.empty(0, dtype=torch.long)
        for step in range(decoding.max_new_tokens):
            if step > 0:
                finished = int((~live).sum())
                if self.leave_early and finished and finished * 4 >= len(live):
                    keep = live.nonzero().squeeze(1)
                    for position in (~live).nonzero().squeeze(1).tolist():
                        self._keep_states(batch, position, tokens_of[batch.rows[position]])
                    batch.keep(keep)
                    self.rows_left_early += len(live) - len(keep)
                    live, positions, tokens = live[keep], positions[keep], tokens[keep]
                batch.mask = torch.cat(
                    [batch.mask, torch.ones((len(live), 1), dtype=torch.long)], dim=1
                )
                logits = self._forward(
                    tokens[:, None], positions[:, None] + step - 1, batch.mask, batch.layers, 1
                )[:, -1]
                self.computed_tokens += len(live)
            if decoding.greedy:
                tokens = torch.argmax(logits, dim=-1)
            else:
                tokens = _sample(logits, warpers, batch.rows, total, decoding.pad_id)
            tokens = torch.where(live, tokens, decoding.pad_id)
            logprobs = torch.log_softmax(logits / temperature, dim=-1)
            chosen = logprobs.gather(1, tokens[:, None]).squeeze(1).tolist()
            for row, alive, token, logprob in zip(
                batch.rows, live.tolist(), tokens.tolist(), chosen, strict=True
            ):
                if alive:
                    tokens_of[row].append(token)
                    logprobs_of[row].append(logprob)
            live &= ~torch.isin(tokens, stops)
            if not live.any():
                break
        stop_set = set(decoding.stop_ids)
        return [
            (ids, logprobs, "stop" if ids and ids[-1] in stop_set else "length")
            for ids, logprobs in zip(tokens_of, logprobs_of, strict=True)
        ]


class _DecodeBatch:
    """The rows still in the decoding batch: which prompts they are (`rows`, indices into
    `prompts`), their cache layers and which cache columns hold their fed ids (`mask`:
    1) or padding (0)."""

    def __init__(
        self, prompts: Sequence[list[int]], layers: list[_PreallocatedLayer], mask: torch.Tensor
    ):
        self.prompts = prompts
        self.layers = layers
        self.mask = mask
        self.rows = list(range(len(prompts)))

    def keep(self, positions: torch.Tensor) -> None:
        """Keep only the rows at `positions` (ascending) of the batch."""
        self.rows = [self.rows[p] for p in positions.tolist()]
        self.mask = self.mask[positions]
        for layer in self.layers:
            layer.keep_rows(positions)


def _sample(
    logits: torch.Tensor, warpers: list[Any], rows: list[int], total: int, pad_id: int
) -> torch.Tensor:
    """One sampled id per row of `logits` (the batch rows `rows` of `total`). The draw is
    made over all `total` rows, the ones that left the batch certain to give `pad_id`:
    `torch.multinomial` uses the same random numbers for a row whatever the other rows'
    distributions, so the ids are those of `generate` decoding every row to the end."""
    scores = logits
    for warp in warpers:
        scores = warp(None, scores)
    probs = torch.softmax(scores, dim=-1)
    if len(rows) < total:
        full = probs.new_zeros((total, probs.shape[1]))
        full[:, pad_id] = 1.0
        full[rows] = probs
        return torch.multinomial(full, 1).squeeze(1)[rows]
    return torch.multinomial(probs, 1).squeeze(1)


def _warpers(decoding: Decoding) -> list[Any]:
    """`generate`'s sampling warpers for our settings, in its order."""
    if decoding.greedy:
        return []
    warpers: list[Any] = []
    if decoding.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(decoding.temperature))
    if decoding.top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=decoding.top_p))
    return warpers


def trim_at_stop(
    tokens: torch.Tensor, logprobs: torch.Tensor, stop_ids: Sequence[int]
) -> list[Generated]:
    """Each row's generated ids up to and including its first stop id (finish `stop`),
    or all of them (`length`), with their log-probs."""
    stops = set(stop_ids)
    results: list[Generated] = []
    for row in range(tokens.shape[0]):
        ids = tokens[row].tolist()
        end = next((i + 1 for i, t in enumerate(ids) if t in stops), None)
        finish: FinishReason = "stop" if end is not None else "length"
        ids = ids[: end if end is not None else len(ids)]
        results.append((ids, logprobs[row, : len(ids)].tolist(), finish))
    return results
