"""Progress reporting for the flywheel stages: a small protocol, a silent default, and
rich progress bars (one bar per phase) for the command line."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class StageProgress(Protocol):
    def start(self, phase: str, total: int, done: int = 0) -> None:
        """A phase begins with `total` items, `done` of them already on disk."""
        ...

    def advance(self, phase: str, n: int = 1) -> None: ...


class NullProgress:
    def start(self, phase: str, total: int, done: int = 0) -> None:
        return None

    def advance(self, phase: str, n: int = 1) -> None:
        return None


class RichProgress:
    """Rich bars on stderr; use as a context manager."""

    def __init__(self, console: Console | None = None):
        self._progress = Progress(
            TextColumn("[progress.description]{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
        )
        self._bars: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def start(self, phase: str, total: int, done: int = 0) -> None:
        if phase in self._bars:
            self._progress.update(self._bars[phase], total=total, completed=done)
        else:
            self._bars[phase] = self._progress.add_task(phase, total=total, completed=done)

    def advance(self, phase: str, n: int = 1) -> None:
        if phase in self._bars:
            self._progress.advance(self._bars[phase], n)
