"""Per-token log-probabilities of target ids without a batch x seq x vocab float32 tensor.

The naive way, `log_softmax(model(ids).logits.float()).gather(targets)`, materialises
(and keeps for backward) several batch x seq x vocab tensors; for a 49k-152k vocabulary
that dominates training memory. Here the decoder runs once to get hidden states, only the
positions that are trained on are kept, and the lm_head + log-softmax run over chunks of
those positions. Under autograd each chunk is checkpointed: its logits are freed after the
forward and recomputed in the backward, so peak logit memory is chunk x vocab.

Assumes the usual causal-LM head: logits = lm_head(final hidden state), no soft-capping
or logit scaling (true for Llama, Qwen2/3, SmolLM2, Mistral).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from agentwheel.llm.kv_generation import cache_argument
from agentwheel.train.model import unwrap


@dataclass
class TokenLogprobs:
    """Per-token results aligned with `targets`; 0.0 where `target_mask` is 0."""

    logprobs: Tensor
    entropy: Tensor | None = None


def decoder_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The transformer body (ids → final hidden states) and the lm_head of a causal LM,
    also when it is wrapped by `peft` (adapters stay active: they live inside the layers)."""
    base = unwrap(model)
    return base.get_decoder(), base.get_output_embeddings()


def _chunk_logprobs(
    head: nn.Module, hidden: Tensor, targets: Tensor, temperature: float, with_entropy: bool
) -> tuple[Tensor, Tensor]:
    # float32 for the softmax even under bf16 autocast: only chunk x vocab of it exists.
    logits = head(hidden).float()
    if temperature != 1.0:
        logits = logits / temperature
    logprobs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
    if not with_entropy:
        return logprobs, logprobs.new_zeros(())
    with torch.no_grad():
        log_p = torch.log_softmax(logits, dim=-1)
        entropy = -(log_p.exp() * log_p).sum(-1)
    return logprobs, entropy


def logprobs_from_hidden(
    hidden: Tensor,
    head: nn.Module,
    targets: Tensor,
    *,
    chunk_size: int = 1024,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> TokenLogprobs:
    """log p(targets[i] | hidden[i]) for hidden [N, H] and targets [N], `chunk_size` rows
    of logits at a time. Differentiable w.r.t. `hidden` and the head's parameters; entropy
    (of the full next-token distribution, for logging) is never differentiated."""
    logprob_chunks, entropy_chunks = [], []
    for start in range(0, hidden.shape[0], chunk_size):
        args = (head, hidden[start : start + chunk_size], targets[start : start + chunk_size])
        if torch.is_grad_enabled():
            logprobs, entropy = checkpoint(
                _chunk_logprobs, *args, temperature, with_entropy, use_reentrant=False
            )
        else:
            logprobs, entropy = _chunk_logprobs(*args, temperature, with_entropy)
        logprob_chunks.append(logprobs)
        entropy_chunks.append(entropy)
    empty = hidden.new_zeros(0, dtype=torch.float32)
    return TokenLogprobs(
        logprobs=torch.cat(logprob_chunks) if logprob_chunks else empty,
        entropy=(torch.cat(entropy_chunks) if entropy_chunks else empty) if with_entropy else None,
    )


def token_logprobs(
    model: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    targets: Tensor,
    *,
    target_mask: Tensor | None = None,
    chunk_size: int = 1024,
    temperature: float = 1.0,
    with_entropy: bool = False,
    prefix_len: int = 0,
) -> TokenLogprobs:
    """Log-probs [B, T] of `targets` (targets[:, t] is the token after input_ids[:, t]).

    Only positions where `target_mask` is true are computed (the rest are 0.0 and carry
    no gradient), so user, tool and padding tokens cost no lm_head work at all. The first
    `prefix_len` positions, identical in every row, are computed once (`shared_prefix_hidden`).
    """
    decoder, head = decoder_and_head(model)
    hidden = (
        shared_prefix_hidden(decoder, input_ids, attention_mask, prefix_len)
        if prefix_len > 0
        else decoder(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
    )
    if target_mask is None:
        target_mask = torch.ones_like(targets, dtype=torch.bool)
    target_mask = target_mask.bool()
    picked = logprobs_from_hidden(
        hidden[target_mask],
        head,
        targets[target_mask],
        chunk_size=chunk_size,
        temperature=temperature,
        with_entropy=with_entropy,
    )
    logprobs = torch.zeros(targets.shape, dtype=torch.float32, device=targets.device)
    logprobs = logprobs.masked_scatter(target_mask, picked.logprobs)
    entropy = None
    if picked.entropy is not None:
        entropy = torch.zeros_like(logprobs).masked_scatter(target_mask, picked.entropy)
    return TokenLogprobs(logprobs=logprobs, entropy=entropy)


def shared_prefix_hidden(
    decoder: nn.Module, input_ids: Tensor, attention_mask: Tensor, prefix_len: int
) -> Tensor:
    """Final hidden states [B, T, H] of rows whose first `prefix_len` ids are the same:
    the prefix runs once (one row), the rest of every row attends to its keys/values.
    Under autograd the prefix's gradient is the sum over the rows that read it, so loss and
    gradients equal those of running every row whole (to float rounding), for the cost of
    one prefix instead of B. Needs the decoder's cache, so not with activation
    checkpointing (which turns the cache off)."""
    rows, width = input_ids.shape
    prefix = decoder(input_ids=input_ids[:1, :prefix_len], use_cache=True)
    argument = cache_argument(decoder)
    cache = getattr(prefix, argument)
    cache.batch_repeat_interleave(rows)
    positions = torch.arange(prefix_len, width, device=input_ids.device).expand(rows, -1)
    rest = decoder(
        input_ids=input_ids[:, prefix_len:],
        attention_mask=attention_mask,
        position_ids=positions,
        use_cache=True,
        **{argument: cache},
    ).last_hidden_state
    return torch.cat([prefix.last_hidden_state.expand(rows, -1, -1), rest], dim=1)
