"""GRPO with DAPO's refinements: group-relative advantages, clip-higher, token-level loss,
dynamic sampling (drop groups whose rewards are all equal), optional k3 KL penalty.

One `GRPOTrainer.step` is one optimizer step on a batch of rollout groups (all rollouts of
one task form a group). Only agent-generated tokens (loss mask 1) get a loss; user, tool
and template tokens contribute exactly zero gradient.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from agentwheel.core.stats import mean
from agentwheel.envs.stance import stance_shaped_reward
from agentwheel.envs.trajectory import TokenTrace, Trajectory
from agentwheel.settings.trainer import GRPOConfig
from agentwheel.train.batching import (
    MicroBatch,
    TrainSequence,
    make_micro_batches,
    padding_fraction,
)
from agentwheel.train.logprobs import token_logprobs
from agentwheel.train.model import (
    autocast,
    is_lora,
    lr_at,
    model_device,
    trainable_parameters,
    unwrap,
)
from agentwheel.train.trainer_base import Trainer

RewardFn = Callable[[Trajectory], float]


_DROPOUT_KEYS = ("attention_dropout", "hidden_dropout", "dropout", "resid_pdrop", "attn_pdrop")


def trajectory_reward(trajectory: Trajectory) -> float:
    """The environment's verdict: 1.0 when the episode passed, else 0.0."""
    return trajectory.reward.value


def training_reward(config: GRPOConfig) -> RewardFn:
    """The reward GRPO learns from: the environment's verdict, or with
    `wrong_stance_penalty` > 0 the verdict with wrong stances ranked below other failures
    (`envs.stance.stance_shaped_reward`)."""
    if config.wrong_stance_penalty == 0:
        return trajectory_reward
    return functools.partial(stance_shaped_reward, penalty=config.wrong_stance_penalty)


def group_advantages(
    rewards_by_group: Sequence[Sequence[float]], normalise_std: bool = True, eps: float = 1e-6
) -> list[list[float]]:
    """A_i = (r_i - mean(group)) / (std(group) + eps), or r_i - mean(group) without std.

    std is the sample standard deviation (n - 1), as in TRL and verl; a group of one
    has no spread and gets advantage 0.
    """
    advantages = []
    for rewards in rewards_by_group:
        mean = sum(rewards) / len(rewards)
        centred = [r - mean for r in rewards]
        if normalise_std:
            var = sum(c * c for c in centred) / (len(rewards) - 1) if len(rewards) > 1 else 0.0
            centred = [c / (math.sqrt(var) + eps) for c in centred]
        advantages.append(centred)
    return advantages


@dataclass
class InformativeGroups:
    """Groups that carry a learning signal, and how many were dropped for carrying none."""

    kept: list[list[Trajectory]]
    rewards: list[list[float]]
    dropped: int


def drop_uniform_groups(
    groups: Sequence[Sequence[Trajectory]], reward_fn: RewardFn = trajectory_reward
) -> InformativeGroups:
    """Dynamic sampling: a group whose rewards are all equal (all pass or all fail) has
    all advantages 0 and no gradient, so it is dropped; the caller may roll out more
    tasks to refill the batch."""
    kept, rewards, dropped = [], [], 0
    for group in groups:
        group_rewards = [reward_fn(t) for t in group]
        if len(set(group_rewards)) > 1:
            kept.append(list(group))
            rewards.append(group_rewards)
        else:
            dropped += 1
    return InformativeGroups(kept=kept, rewards=rewards, dropped=dropped)


@dataclass
class LossStats:
    """Means over the agent tokens of the batch the loss was computed on."""

    num_tokens: int
    clip_fraction: float  # tokens whose gradient the clip zeroed
    approx_kl: float  # k3 estimate of KL(old || new)
    ratio_mean: float
    ref_kl: float  # k3 estimate of KL(new || ref); 0 without a reference


def grpo_loss(
    logprobs_new: Tensor,
    logprobs_old: Tensor,
    advantages: Tensor,
    loss_mask: Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    kl_coef: float = 0.0,
    ref_logprobs: Tensor | None = None,
    num_tokens: int | None = None,
) -> tuple[Tensor, LossStats]:
    """Token-level clipped surrogate with clip-higher (DAPO eq. 8) plus an optional k3 KL.

    For every agent token t (loss_mask 1) of sequence i, with r_t = exp(new_t - old_t):

        l_t = -min(r_t * A_i, clip(r_t, 1 - clip_low, 1 + clip_high) * A_i)
              + kl_coef * (exp(ref_t - new_t) - (ref_t - new_t) - 1)

        loss = sum_t l_t / num_tokens

    `num_tokens` defaults to the agent tokens in these tensors; when a batch is split into
    micro-batches, pass the whole batch's count so that the summed micro-batch gradients
    are those of one token-level mean. Log-prob tensors are [B, T]; `advantages` is [B]
    (one per sequence) or [B, T].
    """
    mask = loss_mask.bool()
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    # where(), not a product with the mask: off-mask entries may hold anything, even
    # infinities (inf * 0 is nan); where() gives those positions an exactly zero gradient.
    log_ratio = torch.where(mask, logprobs_new - logprobs_old, 0.0)
    ratio = log_ratio.exp()
    clipped_ratio = ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    per_token = -torch.minimum(ratio * advantages, clipped_ratio * advantages)
    ref_log_ratio = None
    if kl_coef > 0.0:
        if ref_logprobs is None:
            raise ValueError("kl_coef > 0 needs ref_logprobs")
        ref_log_ratio = torch.where(mask, ref_logprobs - logprobs_new, 0.0)
        per_token = per_token + kl_coef * (ref_log_ratio.exp() - ref_log_ratio - 1.0)
    count = int(mask.sum()) if num_tokens is None else num_tokens
    loss = torch.where(mask, per_token, 0.0).sum() / max(count, 1)

    with torch.no_grad():
        n = max(int(mask.sum()), 1)
        clipped = ((advantages > 0) & (ratio > 1.0 + clip_high)) | (
            (advantages < 0) & (ratio < 1.0 - clip_low)
        )
        ref_kl = 0.0
        if ref_log_ratio is not None:
            ref_kl = float(((ref_log_ratio.exp() - ref_log_ratio - 1.0) * mask).sum()) / n
        stats = LossStats(
            num_tokens=int(mask.sum()),
            clip_fraction=float((clipped & mask).sum()) / n,
            approx_kl=float(((ratio - 1.0 - log_ratio) * mask).sum()) / n,
            ratio_mean=float((ratio * mask).sum()) / n,
            ref_kl=ref_kl,
        )
    return loss, stats


def rollout_sequences(
    groups: Sequence[Sequence[Trajectory]],
    config: GRPOConfig,
    reward_fn: RewardFn = trajectory_reward,
) -> tuple[InformativeGroups, list[TrainSequence]]:
    """The groups that are trained on (all, or the informative ones under dynamic
    sampling), and their trajectories as sequences carrying group-relative advantages."""
    if config.dynamic_sampling:
        informative = drop_uniform_groups(groups, reward_fn)
    else:
        rewards = [[reward_fn(t) for t in g] for g in groups]
        informative = InformativeGroups([list(g) for g in groups], rewards, dropped=0)
    advantages = group_advantages(informative.rewards, config.normalise_std)
    sequences = [
        TrainSequence.from_trace(_trace(t), advantage, config.max_seq_len)
        for group, group_advantage in zip(informative.kept, advantages, strict=True)
        for t, advantage in zip(group, group_advantage, strict=True)
    ]
    return informative, sequences


@dataclass
class GRPOStepMetrics:
    step: int  # optimizer steps taken so far (after this one)
    updated: bool  # False when every group was dropped or no agent token was left
    loss: float
    reward_mean: float  # over every trajectory given, before dynamic sampling
    groups_kept: int
    groups_dropped: int
    trained_tokens: int  # agent tokens in the loss
    clip_fraction: float
    approx_kl: float
    ref_kl: float
    ratio_mean: float
    entropy: float  # mean next-token entropy on agent tokens
    response_tokens_mean: float  # agent tokens per kept trajectory
    sequence_tokens_mean: float  # all tokens per kept trajectory
    padding_fraction: float
    grad_norm: float
    lr: float
    step_s: float
    tokens_per_s: float  # real (non-padding) tokens through forward + backward per second

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class GRPOTrainer(Trainer):
    """Owns the policy, its optimizer and (when kl_coef > 0) a frozen reference.

    `temperature` is the sampler's (a schedule's `rollout.temperature`): log-probs are of
    logits / temperature, as the sampler saw them."""

    def __init__(
        self,
        model: nn.Module,
        config: GRPOConfig,
        *,
        temperature: float = 1.0,
        reward_fn: RewardFn = trajectory_reward,
        ref_model: nn.Module | None = None,
        pad_id: int = 0,
    ):
        super().__init__(model, config, pad_id)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.config: GRPOConfig = config
        self.temperature = temperature
        self.reward_fn = reward_fn
        # The reference is the starting policy: with LoRA, the base with adapters off;
        # else a frozen copy (a second set of weights in memory).
        self.ref_model = ref_model
        if config.kl_coef > 0 and ref_model is None and not is_lora(self.model):
            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)

    def step(
        self,
        groups: Sequence[Sequence[Trajectory]],
        rewards: Sequence[Sequence[float]] | None = None,
    ) -> GRPOStepMetrics:
        """One optimizer step on rollout groups (each group: all trials of one task).

        `rewards`, parallel to `groups`, overrides the trainer's reward function for this
        step (reasoning rollouts carry a graded reward that is not the environment's)."""
        start = time.perf_counter()
        cfg = self.config
        reward_fn = self.reward_fn if rewards is None else given_rewards(groups, rewards)
        all_rewards = [reward_fn(t) for g in groups for t in g]
        informative, sequences = rollout_sequences(groups, cfg, reward_fn)
        trained = [s for s in sequences if s.num_trained_tokens > 0]
        device = model_device(self.model)
        batches = [
            b.to(device)
            for b in make_micro_batches(
                trained, cfg.micro_batch_tokens, self.pad_id, share_prefixes=self._share_prefixes
            )
        ]
        num_tokens = sum(b.num_tokens for b in batches)

        # Old (behaviour) and reference log-probs, before any weight changes. Recomputed
        # ones are the training forward's own, detached: one optimizer step per batch, so
        # the weights are those the old log-probs would be recomputed with (no separate
        # no-grad pass over every token, a quarter to a third of the step's compute).
        reuse_forward = self._old_is_current_forward()
        old_logprobs = [None if reuse_forward else self._old_logprobs(b) for b in batches]
        ref_logprobs = [self._ref_logprobs(b) if cfg.kl_coef > 0 else None for b in batches]

        lr = lr_at(self.step_count, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, entropy_sum = 0.0, 0.0
        weighted = {"clip_fraction": 0.0, "approx_kl": 0.0, "ratio_mean": 0.0, "ref_kl": 0.0}
        for batch, old, ref in zip(batches, old_logprobs, ref_logprobs, strict=True):
            with autocast(self.model, cfg):
                new = token_logprobs(
                    self.model,
                    batch.input_ids,
                    batch.attention_mask,
                    batch.targets,
                    target_mask=batch.target_mask,
                    chunk_size=cfg.logprob_chunk_tokens,
                    temperature=self.temperature,
                    with_entropy=True,
                    prefix_len=batch.prefix_len,
                )
            loss, stats = grpo_loss(
                new.logprobs,
                new.logprobs.detach() if old is None else old,
                batch.advantages,
                batch.target_mask,
                clip_low=cfg.clip_low,
                clip_high=cfg.clip_high,
                kl_coef=cfg.kl_coef,
                ref_logprobs=ref,
                num_tokens=num_tokens,
            )
            loss.backward()  # micro-batch losses are pre-divided by num_tokens: grads add up
            loss_sum += loss.item()
            assert new.entropy is not None
            entropy_sum += float(new.entropy[batch.target_mask].sum())
            for key in weighted:
                weighted[key] += getattr(stats, key) * stats.num_tokens
        grad_norm = 0.0
        if num_tokens > 0:
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(trainable_parameters(self.model), cfg.max_grad_norm)
            )
            self.optimizer.step()
            self.step_count += 1
        self.optimizer.zero_grad(set_to_none=True)

        elapsed = time.perf_counter() - start
        n = max(num_tokens, 1)
        kept = [t for g in informative.kept for t in g]
        return GRPOStepMetrics(
            step=self.step_count,
            updated=num_tokens > 0,
            loss=loss_sum,
            reward_mean=sum(all_rewards) / max(len(all_rewards), 1),
            groups_kept=len(informative.kept),
            groups_dropped=informative.dropped,
            trained_tokens=num_tokens,
            clip_fraction=weighted["clip_fraction"] / n,
            approx_kl=weighted["approx_kl"] / n,
            ref_kl=weighted["ref_kl"] / n,
            ratio_mean=weighted["ratio_mean"] / n,
            entropy=entropy_sum / n,
            response_tokens_mean=mean([sum(_trace(t).loss_mask) for t in kept]),
            sequence_tokens_mean=mean([len(_trace(t)) for t in kept]),
            padding_fraction=padding_fraction(batches),
            grad_norm=grad_norm,
            lr=lr,
            step_s=elapsed,
            tokens_per_s=sum(b.num_real_tokens for b in batches) / elapsed,
        )

    @property
    def _share_prefixes(self) -> bool:
        return self.config.share_prefixes and not self.config.gradient_checkpointing

    def _old_is_current_forward(self) -> bool:
        """Whether the old log-probs are the training forward's: recomputed, and no dropout
        makes the training forward differ from an evaluation one."""
        if self.config.old_logprobs != "recompute":
            return False
        config = getattr(unwrap(self.model), "config", None)
        dropout = any(isinstance(m, nn.Dropout) and m.p > 0 for m in self.model.modules()) or any(
            float(getattr(config, k, 0.0) or 0.0) > 0 for k in _DROPOUT_KEYS
        )
        return not dropout

    def _old_logprobs(self, batch: MicroBatch) -> Tensor:
        """The behaviour policy's log-probs: the sampler's where it returned them (unless
        configured to recompute), else the current policy's, without gradient."""
        if self.config.old_logprobs == "sampling" and bool(batch.has_sampling_logprobs.all()):
            return batch.sampling_logprobs
        recomputed = self._logprobs_no_grad(self.model, batch)
        if self.config.old_logprobs == "recompute":
            return recomputed
        return torch.where(
            batch.has_sampling_logprobs.unsqueeze(-1), batch.sampling_logprobs, recomputed
        )

    def _ref_logprobs(self, batch: MicroBatch) -> Tensor:
        if self.ref_model is not None:
            return self._logprobs_no_grad(self.ref_model, batch)
        with self.model.disable_adapter():  # type: ignore[operator]
            return self._logprobs_no_grad(self.model, batch)

    def _logprobs_no_grad(self, model: nn.Module, batch: MicroBatch) -> Tensor:
        was_training = model.training
        model.eval()
        with torch.no_grad(), autocast(model, self.config):
            out = token_logprobs(
                model,
                batch.input_ids,
                batch.attention_mask,
                batch.targets,
                target_mask=batch.target_mask,
                chunk_size=self.config.logprob_chunk_tokens,
                temperature=self.temperature,
                prefix_len=batch.prefix_len,
            )
        model.train(was_training)
        return out.logprobs


def given_rewards(
    groups: Sequence[Sequence[Trajectory]], rewards: Sequence[Sequence[float]]
) -> RewardFn:
    """A reward function that returns the reward given for each trajectory of `groups`."""
    shape = [len(g) for g in groups]
    if [len(r) for r in rewards] != shape:
        raise ValueError(f"rewards shaped {[len(r) for r in rewards]}, groups shaped {shape}")
    by_id = {
        id(t): float(r)
        for group, group_rewards in zip(groups, rewards, strict=True)
        for t, r in zip(group, group_rewards, strict=True)
    }
    return lambda trajectory: by_id[id(trajectory)]


def _trace(trajectory: Trajectory) -> TokenTrace:
    if trajectory.tokens is None:
        raise ValueError(
            f"trajectory {trajectory.task_id}#{trajectory.trial} has no token trace: "
            "GRPO needs a policy with a renderer (token-in, token-out)"
        )
    return trajectory.tokens
