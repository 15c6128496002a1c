"""Supervised fine-tuning (the warm start): cross-entropy on agent tokens only.

Trains on any (ids, loss_mask) sequences, typically the token traces of oracle or teacher
episodes, so that the model learns the tool-call format before RL. Same batching,
log-prob and accumulation machinery as GRPO; the data order of each epoch is a seeded
permutation, and the position in it is part of a checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from agentwheel.envs.trajectory import Trajectory
from agentwheel.settings.trainer import SFTConfig
from agentwheel.train.batching import TrainSequence, make_micro_batches, padding_fraction
from agentwheel.train.logprobs import token_logprobs
from agentwheel.train.model import (
    autocast,
    lr_at,
    model_device,
    trainable_parameters,
)
from agentwheel.train.trainer_base import Trainer


def sft_loss(logprobs: Tensor, loss_mask: Tensor, num_tokens: int | None = None) -> Tensor:
    """Token-level mean negative log-likelihood of the agent tokens:
    loss = -sum_t mask_t * logp_t / num_tokens (num_tokens defaults to sum(mask))."""
    mask = loss_mask.bool()
    count = int(mask.sum()) if num_tokens is None else num_tokens
    return -torch.where(mask, logprobs, 0.0).sum() / max(count, 1)


def sft_sequences(
    trajectories: Iterable[Trajectory], max_seq_len: int, only_passed: bool = True
) -> list[TrainSequence]:
    """Training sequences from episodes with a token trace (passing ones by default)."""
    return [
        TrainSequence.from_trace(t.tokens, max_len=max_seq_len)
        for t in trajectories
        if t.tokens is not None and (t.passed or not only_passed)
    ]


def epoch_order(num_items: int, seed: int, epoch: int) -> list[int]:
    """The data order of one epoch: a permutation fixed by (seed, epoch) alone."""
    return [int(i) for i in np.random.default_rng([seed, epoch]).permutation(num_items)]


@dataclass
class SFTStepMetrics:
    step: int  # optimizer steps taken so far (after this one)
    epoch: int
    loss: float  # mean NLL per agent token
    trained_tokens: int
    sequences: int
    padding_fraction: float
    grad_norm: float
    lr: float
    step_s: float
    tokens_per_s: float  # real (non-padding) tokens through forward + backward per second

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SFTTrainer(Trainer):
    def __init__(self, model: nn.Module, config: SFTConfig, *, pad_id: int = 0):
        super().__init__(model, config, pad_id)
        self.config: SFTConfig = config
        self.epoch = 0
        self.batch_in_epoch = 0  # batches of the current epoch already trained on

    def step(self, sequences: Sequence[TrainSequence]) -> SFTStepMetrics:
        """One optimizer step on these sequences (micro-batched by length)."""
        start = time.perf_counter()
        cfg = self.config
        trained = [s for s in sequences if s.num_trained_tokens > 0]
        device = model_device(self.model)
        batches = [
            b.to(device) for b in make_micro_batches(trained, cfg.micro_batch_tokens, self.pad_id)
        ]
        num_tokens = sum(b.num_tokens for b in batches)

        lr = lr_at(self.step_count, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for batch in batches:
            with autocast(self.model, cfg):
                out = token_logprobs(
                    self.model,
                    batch.input_ids,
                    batch.attention_mask,
                    batch.targets,
                    target_mask=batch.target_mask,
                    chunk_size=cfg.logprob_chunk_tokens,
                )
            loss = sft_loss(out.logprobs, batch.target_mask, num_tokens)
            loss.backward()  # pre-divided by the step's token count: micro-batch grads add up
            loss_sum += loss.item()
        grad_norm = 0.0
        if num_tokens > 0:
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(trainable_parameters(self.model), cfg.max_grad_norm)
            )
            self.optimizer.step()
            self.step_count += 1
        self.optimizer.zero_grad(set_to_none=True)

        elapsed = time.perf_counter() - start
        return SFTStepMetrics(
            step=self.step_count,
            epoch=self.epoch,
            loss=loss_sum,
            trained_tokens=num_tokens,
            sequences=len(trained),
            padding_fraction=padding_fraction(batches),
            grad_norm=grad_norm,
            lr=lr,
            step_s=elapsed,
            tokens_per_s=sum(b.num_real_tokens for b in batches) / elapsed,
        )

    def train(
        self,
        sequences: Sequence[TrainSequence],
        *,
        max_steps: int | None = None,
        on_step: Callable[[SFTStepMetrics], None] | None = None,
    ) -> list[SFTStepMetrics]:
        """Run `config.epochs` epochs from the current position (0 for a fresh trainer,
        the saved one after `load`), stopping early once `max_steps` optimizer steps have
        been taken in total. A last batch smaller than `batch_size` is kept."""
        history: list[SFTStepMetrics] = []
        size = self.config.batch_size
        while self.epoch < self.config.epochs:
            order = epoch_order(len(sequences), self.config.seed, self.epoch)
            batches = [order[i : i + size] for i in range(0, len(order), size)]
            while self.batch_in_epoch < len(batches):
                if max_steps is not None and self.step_count >= max_steps:
                    return history
                batch = [sequences[i] for i in batches[self.batch_in_epoch]]
                metrics = self.step(batch)
                self.batch_in_epoch += 1
                history.append(metrics)
                if on_step is not None:
                    on_step(metrics)
            self.epoch += 1
            self.batch_in_epoch = 0
        return history

    def data_position(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}

    def restore_position(self, position: dict[str, Any]) -> None:
        self.epoch = position.get("epoch", 0)
        self.batch_in_epoch = position.get("batch_in_epoch", 0)
