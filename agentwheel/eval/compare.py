"""Paired comparisons of two policies on the same tasks: the mean difference of per-task
scores and its percentile bootstrap interval, resampling tasks (not episodes), so that a
difference is only claimed when it holds across tasks."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel


class PairedDifference(BaseModel):
    mean: float
    ci95: tuple[float, float]
    n_tasks: int


def paired_bootstrap(
    after: Mapping[str, float],
    before: Mapping[str, float],
    resamples: int = 10_000,
    seed: int = 0,
) -> PairedDifference:
    """`after - before` over the tasks both scored, with a 95% percentile interval from
    `resamples` bootstrap draws of tasks with replacement."""
    tasks = sorted(set(after) & set(before))
    if not tasks:
        raise ValueError("the two score sets share no task")
    diffs = np.array([after[t] - before[t] for t in tasks], dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(diffs), size=(resamples, len(diffs)))
    means = diffs[draws].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return PairedDifference(
        mean=round(float(diffs.mean()), 4),
        ci95=(round(float(lo), 4), round(float(hi), 4)),
        n_tasks=len(tasks),
    )


def bootstrap_ci(
    scores: Mapping[str, float], resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of the mean per-task score, from `resamples` bootstrap draws
    of tasks with replacement."""
    if not scores:
        raise ValueError("no task scores")
    values = np.array([scores[t] for t in sorted(scores)], dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return round(float(lo), 4), round(float(hi), 4)
