"""What a resumed run needs to know, committed to `state.json` after every step and phase.

The commit is the run's point of truth: files appended to between two commits (metrics,
rollout traces) are cut back to the line counts the last commit recorded, so a run killed
between a write and its commit repeats that write, once, when resumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.run_layout import STATE

__all__ = ["STATE", "RunState", "truncate_to_committed"]


class RunStateDamaged(ValueError):
    """A state.json that does not parse (cut short, edited, overwritten)."""


class RunState(BaseModel):
    """Finished phases, the training position, the checkpoint, evals and notes."""

    done: list[str] = Field(default_factory=list)
    position: dict[str, Any] = Field(default_factory=dict)  # stage, round, step
    checkpoint: dict[str, Any] = Field(default_factory=dict)  # trainer, path, stage position
    metrics_lines: int = 0
    evals: dict[str, float] = Field(default_factory=dict)  # eval name -> held-out pass^1
    notes: list[str] = Field(default_factory=list)
    started_from: dict[str, str] = Field(default_factory=dict)  # model.init_from and its digest

    @classmethod
    def load(cls, run_dir: Path, resume: bool) -> RunState:
        """The committed state of `run_dir` when resuming (a fresh one otherwise); a run
        directory that holds a state is never started over without `resume`."""
        path = run_dir / STATE
        if path.exists() and not resume:
            raise FileExistsError(f"{path} exists: resume it, or pick another run dir")
        if not (resume and path.exists()):
            return cls()
        return cls.parse_saved(path.read_bytes(), str(path))

    @classmethod
    def parse_saved(cls, saved: str | bytes, where: str) -> RunState:
        """A state as saved (state.json, or the copy a checkpoint keeps); `RunStateDamaged`
        names the file and its first problem when it does not parse."""
        try:
            return cls.model_validate_json(saved)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise RunStateDamaged(f"{where} is damaged ({problem})") from None

    def commit(self, run_dir: Path) -> None:
        write_text_atomic(run_dir / STATE, self.model_dump_json(indent=2))

    @property
    def global_step(self) -> int:
        """Optimizer steps of every stage so far (SFT and GRPO)."""
        return int(self.position.get("global_step", 0))


def truncate_to_committed(path: Path, lines: int) -> None:
    """Keep the first `lines` lines of a JSONL file (what the committed state accounts for)."""
    if path.exists():
        kept = path.read_text().splitlines(keepends=True)[:lines]
        write_text_atomic(path, "".join(kept))
