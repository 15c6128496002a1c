"""What every phase of a run shares: the run directory and its config, the committed state,
the metrics sinks, the policy and the engine it generates with, the GRPO trainer, and the
bookkeeping that keeps them in step (record a step, checkpoint, commit, note).

Phases (phases.py, rounds/) are functions of a `RunContext`; the driver (schedule.py)
calls them in order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.messages import SamplingParams
from agentwheel.core.run_layout import RUN_STATE, RunLayout
from agentwheel.core.yaml_text import load_yaml
from agentwheel.train.checkpoint import (
    crash_point,
    load_checkpoint,
    recover_checkpoint,
    resume_point,
    weights_digest,
)
from agentwheel.train.generation import Generator
from agentwheel.train.grpo import GRPOTrainer
from agentwheel.train.metrics_log import MetricsLog
from agentwheel.train.model_factory import build_model
from agentwheel.train.phase_driver import PhaseProgress
from agentwheel.train.rollout import TurnSeededPolicy, rollout_seed
from agentwheel.train.run_state import RunState, RunStateDamaged
from agentwheel.train.schedule_config import ScheduleConfig
from agentwheel.train.trainer_base import Trainer

StepHook = Callable[[dict[str, Any]], None]


class RunContext:
    """One run directory, opened fresh or (with `resume=True`) where its state left off."""

    def __init__(
        self,
        config: ScheduleConfig,
        run_dir: Path,
        *,
        resume: bool = False,
        on_step: StepHook | None = None,
        progress: PhaseProgress | None = None,
        log: Callable[[str], None] = print,
    ):
        self.dir = Path(run_dir)
        self.layout = RunLayout(self.dir)
        self.on_step = on_step
        self.progress = progress
        self.log = log
        self.state = self._load_state(resume)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = config = self._saved_config(config) if resume else config
        write_text_atomic(self.layout.config, config.to_yaml())
        self.metrics = MetricsLog(self.dir, config.tensorboard, config.wandb_project)
        self.metrics.truncate(self.state.metrics_lines)
        for note in self.metrics.notes:
            if note not in self.state.notes:
                self.state.notes.append(note)
        self.model = build_model(config.model, config.seed)
        if config.model.init_from is not None:
            load_checkpoint(config.model.init_from, self.model.model)
            if not self.state.started_from:
                self.state.started_from = {
                    "path": config.model.init_from,
                    "weights_sha256": weights_digest(self.model.model),
                }
        latest = self.layout.last_checkpoint
        if resume and self.state.checkpoint.get("trainer") not in (None, "sft") and latest.exists():
            # The newest (merged) weights for evals and flywheel steps. An SFT phase that
            # resumes loads its own checkpoint (with LoRA: adapters on the initial base).
            load_checkpoint(latest, self.model.model)
        self.runner_config = config.runner.runner_config()
        self.grpo: GRPOTrainer | None = None
        self.generator = Generator(
            config.model.generation, self.model, self._trained_module, self._initial_model_dir
        )

    def _load_state(self, resume: bool) -> RunState:
        """The committed state; a damaged state.json is replaced by the run state saved
        with the newest checkpoint, and is an error (`RunStateDamaged`) without one."""
        try:
            self.state = RunState.load(self.dir, resume)
            damaged = None
        except RunStateDamaged as exc:
            self.state, damaged = RunState(), exc
        fresh = self.state
        if resume:
            self._reconcile_with_checkpoints()
        if damaged is not None:
            if self.state is fresh:
                raise RunStateDamaged(
                    f"{damaged} and no checkpoint holds a run state to resume from: "
                    "restore the file, or start a new run directory"
                )
            self.note(f"{damaged}; resumed from the run state saved with the checkpoint")
        return self.state

    def _reconcile_with_checkpoints(self) -> None:
        """A step commits in its checkpoint first (with the run state inside) and in
        state.json after: a kill between the two, inside the checkpoint's own commit, or a
        damaged newest checkpoint all resume from the state saved with the checkpoint."""
        recovered = recover_checkpoint(self.layout.sft_checkpoint)
        notes = [recovered] if recovered else []
        point = resume_point(self.layout.last_checkpoint)
        notes += point.notes
        saved = self._checkpoint_run_state(point.run_state, notes)
        if saved is not None and (point.fell_back or saved.global_step > self.state.global_step):
            notes.append(
                f"resumed from the run state saved with the checkpoint at global step "
                f"{saved.global_step} (state.json was at {self.state.global_step})"
            )
            saved.notes = self.state.notes
            self.state = saved
        for text in notes:
            self.note(text)

    def _checkpoint_run_state(self, saved: str | None, notes: list[str]) -> RunState | None:
        if saved is None:
            return None
        where = str(self.layout.last_checkpoint / RUN_STATE)
        try:
            return RunState.parse_saved(saved, where)
        except RunStateDamaged as exc:
            notes.append(f"{exc}; resuming from state.json")
            return None

    def _saved_config(self, config: ScheduleConfig) -> ScheduleConfig:
        """A resumed run keeps the config it started with."""
        path = self.layout.config
        if not path.exists():
            return config
        saved = ScheduleConfig.model_validate(load_yaml(path.read_text()))
        if saved != config:
            self.log("note: the config differs from the run's saved config; using the saved one")
        return saved

    # -- the model

    def _trained_module(self) -> Any:
        return self.grpo.model if self.grpo is not None else self.model.model

    def _initial_model_dir(self) -> str:
        """Where a separate engine (vLLM) loads the architecture from; weights follow."""
        from agentwheel.llm.default_model import hf_spec_dir

        return hf_spec_dir(self.config.model.spec)

    def rollout_policy(self, *position: int) -> TurnSeededPolicy:
        """The policy sampling agentic episodes at `position` (round, step, attempt, ...)."""
        cfg = self.config.rollout
        params = SamplingParams(
            temperature=cfg.temperature,
            max_new_tokens=cfg.max_new_tokens,
            seed=rollout_seed(self.config.seed, *position),
        )
        return TurnSeededPolicy(self.generator.chat_model(), params, name=self.config.model.spec)

    def grpo_trainer(self) -> GRPOTrainer:
        """One GRPO trainer (one optimizer) for all rounds; its reference is the SFT policy
        (this run's, or the `model.init_from` weights it started from)."""
        if self.grpo is None:
            sft = self.layout.sft_checkpoint
            start = sft if sft.exists() else self.config.model.init_from
            if start is not None:
                load_checkpoint(start, self.model.model)
                self.generator.mark_stale()
            self.grpo = GRPOTrainer(self.model.model, self.config.grpo, pad_id=self.model.pad_id)
            if self.state.checkpoint.get("trainer") == "grpo":
                self.grpo.load(self.layout.last_checkpoint)
                self.log(f"resumed GRPO at optimizer step {self.grpo.step_count}")
        return self.grpo

    def checkpoint(
        self,
        trainer: Trainer,
        name: str,
        position: dict[str, Any],
        with_run_state: bool = False,
    ) -> None:
        """Save `trainer` as checkpoints/<name> (with the run state as it will be committed,
        when asked); the generation engine is stale after it."""
        self.generator.mark_stale()
        trainer.save(
            self.layout.checkpoint(name),
            tokenizer=self.model.standalone_tokenizer(),
            save_dtype=self.config.model.save_dtype,
            data_position=position,
            run_state=self.state.model_dump_json(indent=2) if with_run_state else None,
        )

    # -- the rounds

    def previous_round(self, round_: int, kind: str) -> int | None:
        """The latest round before `round_` of this kind (rounds may alternate kinds)."""
        earlier = [r for r in range(1, round_) if self.config.rounds[r - 1].kind == kind]
        return earlier[-1] if earlier else None

    # -- bookkeeping

    def commit(self) -> None:
        self.state.commit(self.dir)

    def finish(self, phase: str) -> None:
        self.state.done.append(phase)
        self.commit()

    def record(self, record: dict[str, Any], global_step: int) -> None:
        """One metrics line; committed with the next `commit`."""
        self.metrics.write(record, global_step)
        self.state.metrics_lines += 1

    def step_done(
        self,
        trainer: Any,
        data_position: dict[str, Any],
        record: dict[str, Any],
        phase: str,
        done: int,
        total: int,
    ) -> None:
        """After an optimizer step (with `state.position` and `state.checkpoint` already
        set): its metrics line, then the checkpoint holding the run state, then state.json,
        then the hooks. The checkpoint's rename is the step's commit point."""
        self.record(record, record["global_step"])
        self.checkpoint(trainer, "last", data_position, with_run_state=True)
        crash_point("step:after_checkpoint")
        self.commit()
        if self.progress is not None:
            self.progress(phase, done, total)
        if self.on_step is not None:
            self.on_step(record)

    def note(self, text: str) -> None:
        """Something a reader of the run should know (a fallback, a skipped sink)."""
        self.log(f"note: {text}")
        self.state.notes.append(text)
