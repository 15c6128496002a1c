"""Where a run's metrics go: metrics.jsonl always; TensorBoard and wandb when they import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentwheel.core.run_layout import RunLayout
from agentwheel.train.run_state import truncate_to_committed


class MetricsLog:
    """metrics.jsonl (one JSON line per step) and, when they import, TensorBoard and wandb.

    A sink that cannot start is skipped with a note in `notes`, never an error: the JSONL
    file is the record every report is built from."""

    def __init__(self, run_dir: Path, tensorboard: bool, wandb_project: str | None = None):
        files = RunLayout(run_dir)
        self.path = files.metrics
        self.writer: Any = None
        self.wandb: Any = None
        self.notes: list[str] = []
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(files.tensorboard))
            except ImportError as exc:
                self.notes.append(f"TensorBoard skipped: {exc}")
        if wandb_project:
            try:
                import wandb

                self.wandb = wandb.init(
                    project=wandb_project, name=run_dir.name, dir=str(run_dir), resume="allow"
                )
            except ImportError as exc:
                self.notes.append(f"wandb skipped: {exc} (pip install wandb)")

    def truncate(self, lines: int) -> None:
        """Drop lines written after the last committed state (a crash between the two)."""
        truncate_to_committed(self.path, lines)

    def write(self, record: dict[str, Any], global_step: int) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        prefix = record.get("stage", "run")
        scalars = {
            f"{prefix}/{key}": value
            for key, value in record.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, global_step)
            self.writer.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=global_step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()
