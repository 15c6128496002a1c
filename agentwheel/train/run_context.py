"""What the phases of a run get: the run's ledger (run_ledger.py: directory, config,
committed state, metrics, notes) and the policy it trains (policy.py: model, generation
engine, GRPO trainer), and the step commit that spans both (checkpoint, then state.json).

Phases (phases.py, rounds/) are functions of a `RunContext`; the driver (schedule.py)
calls them in order.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agentwheel.settings.schedule import ScheduleConfig
from agentwheel.train.checkpoint import (
    crash_point,
    weights_digest,
)
from agentwheel.train.grpo import GRPOTrainer
from agentwheel.train.policy import Policy
from agentwheel.train.run_ledger import RunLedger
from agentwheel.train.trainer_base import Trainer

# state.checkpoint["trainer"] of a run whose newest weights are its SFT phase's own
# (a resumed SFT phase loads them itself, with LoRA as adapters on the initial base).
_BEFORE_OWN_WEIGHTS = (None, "sft")


class RunContext(RunLedger):
    """One run: its ledger, opened fresh or resumed, and its policy with the newest
    committed weights."""

    def __init__(self, config: ScheduleConfig, run_dir: Path, *, resume: bool = False, **kw: Any):
        super().__init__(config, run_dir, resume=resume, **kw)
        self.policy = Policy(self.config)
        self._load_weights(resume)
        self._checkpointed_at = time.monotonic()

    def _load_weights(self, resume: bool) -> None:
        """The `model.init_from` weights (recorded in the state once), then, resuming
        past SFT, the newest checkpoint's (for evals and flywheel steps)."""
        init_from = self.config.model.init_from
        if init_from is not None:
            self.policy.load(init_from)
            if not self.state.started_from:
                self.state.started_from = {
                    "path": init_from,
                    "weights_sha256": weights_digest(self.policy.module),
                }
        latest = self.layout.last_checkpoint
        trainer = self.state.checkpoint.get("trainer")
        if resume and trainer not in _BEFORE_OWN_WEIGHTS and latest.exists():
            self.policy.load(latest)

    def grpo_trainer(self) -> GRPOTrainer:
        """The run's GRPO trainer; its reference is the SFT policy (this run's, or the
        `model.init_from` weights it started from); resumed from the newest checkpoint
        when training stopped inside GRPO."""
        if self.policy.grpo is not None:
            return self.policy.grpo
        sft = self.layout.sft_checkpoint
        resume = self.state.checkpoint.get("trainer") == "grpo"
        trainer = self.policy.grpo_trainer(
            sft if sft.exists() else self.config.model.init_from,
            self.layout.last_checkpoint if resume else None,
        )
        if resume:
            self.log(f"resumed GRPO at optimizer step {trainer.step_count}")
        return trainer

    def checkpoint(
        self,
        trainer: Trainer,
        name: str,
        position: dict[str, Any],
        with_run_state: bool = False,
    ) -> None:
        """Save `trainer` as checkpoints/<name>, with the run state as it will be
        committed when asked."""
        run_state = self.state.model_dump_json(indent=2) if with_run_state else None
        self.policy.save(trainer, self.layout.checkpoint(name), position, run_state)
        self._checkpointed_at = time.monotonic()

    def step_done(
        self,
        trainer: Trainer,
        data_position: dict[str, Any],
        record: dict[str, Any],
        phase: str,
        done: int,
        total: int,
    ) -> None:
        """After an optimizer step (with `state.position` and `state.checkpoint` already
        set): its metrics line, then the checkpoint holding the run state, then state.json,
        then the hooks. The checkpoint's rename is the step's commit point. Within
        `checkpoint_every_s` of the last checkpoint, and not a phase's last step, the step
        is left uncommitted: a resumed run redoes it from the last checkpoint."""
        self.record(record, record["global_step"])
        if not self._checkpoint_due(done, total):
            self.policy.generator.mark_stale()  # new weights, though not saved yet
            crash_point("step:uncommitted")
            self.after_step(record, phase, done, total)
            return
        self.checkpoint(trainer, "last", data_position, with_run_state=True)
        crash_point("step:after_checkpoint")
        self.step_committed(record, phase, done, total)

    def _checkpoint_due(self, done: int, total: int) -> bool:
        every = self.config.checkpoint_every_s
        return every <= 0 or done >= total or time.monotonic() - self._checkpointed_at >= every
