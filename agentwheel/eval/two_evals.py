"""Two evals of the same tasks side by side: the paired difference of pass^1 with its
bootstrap interval over tasks, the tasks that flipped each way, pass counts per branch
kind, and how many episodes came out token for token the same (two numerics, two batch
layouts or two checkpoints of one policy: how much did the outputs move at all?)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel

from agentwheel.core.task import BRANCH_KINDS
from agentwheel.envs.trajectory import Trajectory
from agentwheel.eval.compare import PairedDifference, paired_bootstrap
from agentwheel.eval.evaluate import TRACES, latest_results, read_traces


class EvalsError(ValueError):
    """The two evals cannot be compared (no traces, or no task in common)."""


class KindCounts(BaseModel):
    tasks: int
    passed_a: float
    passed_b: float


class EvalComparison(BaseModel):
    a: str
    b: str
    tasks: int  # in both
    only_in_a: int  # tasks the other eval has no episode of (left out of everything below)
    only_in_b: int
    passed_a: float  # tasks passed (a task's share of trials where k > 1)
    passed_b: float
    pass1_a: float
    pass1_b: float
    diff: PairedDifference  # b - a
    passed_only_a: int  # tasks whose first trial passed in a and failed in b
    passed_only_b: int
    identical_episodes: int  # first trials with the same token ids (messages without ids)
    by_kind: dict[str, KindCounts]


def episodes_by_task(source: Path) -> dict[str, list[Trajectory]]:
    """An eval's finished episodes (the last of each task and trial), by task, in trial
    order. `source` is an eval folder or its traces.jsonl."""
    path = source / TRACES if source.is_dir() else source
    if not path.is_file():
        raise EvalsError(f"{source}: no {TRACES} (an eval's output folder or its traces file)")
    by_task: dict[str, list[Trajectory]] = {}
    for episode in sorted(latest_results(read_traces(path).done), key=lambda t: t.trial):
        by_task.setdefault(episode.task_id, []).append(episode)
    if not by_task:
        raise EvalsError(f"{path}: no finished episode")
    return by_task


def task_scores(episodes: Mapping[str, list[Trajectory]], tasks: list[str]) -> dict[str, float]:
    """pass^1 per task: the share of its trials that passed."""
    return {t: sum(e.passed for e in episodes[t]) / len(episodes[t]) for t in tasks}


def same_episode(a: Trajectory, b: Trajectory) -> bool:
    if a.tokens is not None and b.tokens is not None:
        return a.tokens.ids == b.tokens.ids
    return [m.model_dump() for m in a.messages] == [m.model_dump() for m in b.messages]


def compare_evals(a: Path, b: Path, resamples: int = 10_000, seed: int = 0) -> EvalComparison:
    """Eval `b` against eval `a` on the tasks both ran."""
    first, second = episodes_by_task(a), episodes_by_task(b)
    tasks = sorted(set(first) & set(second))
    if not tasks:
        raise EvalsError(f"{a} and {b} share no task")
    scores_a, scores_b = task_scores(first, tasks), task_scores(second, tasks)
    by_kind: dict[str, KindCounts] = {}
    for kind in [*BRANCH_KINDS, *sorted({first[t][0].branch_kind for t in tasks})]:
        members = [t for t in tasks if first[t][0].branch_kind == kind]
        if members and kind not in by_kind:
            by_kind[kind] = KindCounts(
                tasks=len(members),
                passed_a=sum(scores_a[t] for t in members),
                passed_b=sum(scores_b[t] for t in members),
            )
    return EvalComparison(
        a=str(a),
        b=str(b),
        tasks=len(tasks),
        only_in_a=len(set(first) - set(second)),
        only_in_b=len(set(second) - set(first)),
        passed_a=sum(scores_a.values()),
        passed_b=sum(scores_b.values()),
        pass1_a=round(sum(scores_a.values()) / len(tasks), 4),
        pass1_b=round(sum(scores_b.values()) / len(tasks), 4),
        diff=paired_bootstrap(scores_b, scores_a, resamples, seed),
        passed_only_a=sum(first[t][0].passed and not second[t][0].passed for t in tasks),
        passed_only_b=sum(second[t][0].passed and not first[t][0].passed for t in tasks),
        identical_episodes=sum(same_episode(first[t][0], second[t][0]) for t in tasks),
        by_kind=by_kind,
    )
