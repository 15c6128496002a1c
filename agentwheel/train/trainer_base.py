"""What every trainer (SFT, GRPO) has: the model prepared for training (LoRA, gradient
checkpointing), its optimizer and step count; and saving and resuming all of it (weights
or adapters, optimizer, step, data position, RNG states) as one checkpoint (checkpoint.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from agentwheel.train.checkpoint import (
    TrainerState,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)
from agentwheel.train.model import make_optimizer, prepare_model


class Trainer:
    """A trainer's model, optimizer and step, seeded by `config.seed`; a trainer that walks
    its data in an order of its own says where it stands (`data_position`) and continues
    from there (`restore_position`)."""

    def __init__(self, model: nn.Module, config: Any, pad_id: int):
        seed_everything(config.seed)
        self.config = config
        self.pad_id = pad_id
        self.model: nn.Module = prepare_model(model, config.lora, config.gradient_checkpointing)
        self.optimizer: torch.optim.Optimizer = make_optimizer(self.model, config)
        self.step_count = 0

    def data_position(self) -> dict[str, Any]:
        return {}

    def restore_position(self, position: dict[str, Any]) -> None:
        """Continue from a `data_position` as saved (nothing to do by default)."""

    def save(
        self,
        path: str | Path,
        tokenizer: Any = None,
        save_dtype: str | None = None,
        *,
        data_position: dict[str, Any] | None = None,
        run_state: str | None = None,
    ) -> Path:
        """Checkpoint: HF model (+ tokenizer) for serving, and everything to resume; the
        data position is the trainer's own unless a run gives where it stands. See
        `save_checkpoint` for `save_dtype` and `run_state`."""
        position = self.data_position() if data_position is None else data_position
        return save_checkpoint(
            path,
            self.model,
            self.optimizer,
            TrainerState(step=self.step_count, data_position=position),
            tokenizer=tokenizer,
            config=self.config,
            run_state=run_state,
            save_dtype=save_dtype,
        )

    def load(self, path: str | Path) -> TrainerState:
        """Restore weights (or adapters), optimizer, step, data position and RNG states."""
        state = load_checkpoint(path, self.model, self.optimizer)
        self.step_count = state.step
        self.restore_position(state.data_position)
        return state
