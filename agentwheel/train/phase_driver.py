"""The resumable phase driver of a training run (schedule.py) and of a study
(study/run.py): named phases in order, each skipped when its name is recorded as done."""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterable
from typing import Any

Phase = tuple[str, Callable[[], Any]]
PhaseProgress = Callable[[str, int, int], None]  # (phase description, done, total)
# After a phase: its name, whether it finished (False: it raised), the seconds it took.
PhaseEnded = Callable[[str, bool, float], None]


def run_phases(
    phases: Iterable[Phase],
    done: Container[str],
    ended: PhaseEnded,
    log: Callable[[str], None],
    label: str = "",
) -> None:
    """Every phase whose name is not in `done`, in order; `ended` follows each one, also
    one that raised, so that the caller records it (and the time it took) before the
    next begins."""
    for name, phase in phases:
        if name in done:
            continue
        log(f"== {label}{name}")
        started = time.perf_counter()
        finished = False
        try:
            phase()
            finished = True
        finally:
            ended(name, finished, time.perf_counter() - started)
