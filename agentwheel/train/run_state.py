"""What a resumed run needs to know, committed to `state.json` after every step and phase.

The commit is the run's point of truth: files appended to between two commits (metrics,
rollout traces) are cut back to the line counts the last commit recorded, so a run killed
between a write and its commit repeats that write, once, when resumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.run_layout import STATE

__all__ = ["STATE", "RunState", "truncate_to_committed"]


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
        return cls.model_validate_json(path.read_text()) if resume and path.exists() else cls()

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
