"""One progress bar per phase of a long run (train, demo, study)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from agentwheel.train.phase_driver import PhaseProgress


@contextmanager
def phase_bars(console: Console) -> Iterator[tuple[Progress, PhaseProgress]]:
    """The live display, and the callback a run reports `(phase, done, total)` to: the
    first report of a phase opens its bar."""
    bars: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:

        def on_progress(phase: str, done: int, total: int) -> None:
            if phase not in bars:
                bars[phase] = progress.add_task(phase, total=total)
            progress.update(bars[phase], completed=done, total=total)

        yield progress, on_progress
