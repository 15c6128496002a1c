"""A run's record of itself: its directory (core/run_layout.py), the config it runs with,
the committed state (what is done, where training stands: run_state.py), the metrics
lines, the notes a reader should see, and the commit protocol that keeps them in step
with the checkpoints. No model here: the policy (policy.py) is the run's other half, and
`RunContext` (run_context.py) pairs them for the phases.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.run_layout import RUN_STATE, RunLayout
from agentwheel.core.yaml_text import load_yaml
from agentwheel.envs.runner import RunnerConfig
from agentwheel.settings.schedule import ScheduleConfig
from agentwheel.train.metrics_log import MetricsLog
from agentwheel.train.phase_driver import PhaseProgress
from agentwheel.train.run_state import RunState, RunStateDamaged

StepHook = Callable[[dict[str, Any]], None]


class RunLedger:
    """One run directory's record, opened fresh or (with `resume=True`) where its committed
    state left off."""

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
        self.runner_config: RunnerConfig = config.runner.runner_config()

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
        # Checking a checkpoint reads its tensors: torch is needed only to resume.
        from agentwheel.train.checkpoint import recover_checkpoint, resume_point

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

    def previous_round(self, round_: int, kind: str) -> int | None:
        """The latest round before `round_` of this kind (rounds may alternate kinds)."""
        earlier = [r for r in range(1, round_) if self.config.rounds[r - 1].kind == kind]
        return earlier[-1] if earlier else None

    # -- commits

    def commit(self) -> None:
        self.state.commit(self.dir)

    def finish(self, phase: str) -> None:
        self.state.done.append(phase)
        self.commit()

    def record(self, record: dict[str, Any], global_step: int) -> None:
        """One metrics line; committed with the next `commit`."""
        self.metrics.write(record, global_step)
        self.state.metrics_lines += 1

    def step_committed(self, record: dict[str, Any], phase: str, done: int, total: int) -> None:
        """After a step's checkpoint (which holds the run state): state.json, then the
        progress and step hooks."""
        self.commit()
        self.after_step(record, phase, done, total)

    def after_step(self, record: dict[str, Any], phase: str, done: int, total: int) -> None:
        """The progress and step hooks of a finished step."""
        if self.progress is not None:
            self.progress(phase, done, total)
        if self.on_step is not None:
            self.on_step(record)

    def note(self, text: str) -> None:
        """Something a reader of the run should know (a fallback, a skipped sink)."""
        self.log(f"note: {text}")
        self.state.notes.append(text)
