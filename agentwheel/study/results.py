"""study.json from the evals on disk: per arm greedy pass^1 with its bootstrap interval, by
branch kind and by unseen / seen workflows, sampled pass^4, the train-pool pass rate; the
paired differences that answer the study's question; and whether each goal was met.

Reads only files, so it can be rerun on a finished or half-finished study.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentwheel.core.stats import mean_or_none
from agentwheel.core.task import BRANCH_KINDS, Task
from agentwheel.envs.trajectory import Trajectory
from agentwheel.eval.compare import bootstrap_ci, paired_bootstrap
from agentwheel.eval.evaluate import SUMMARY, TRACES, latest_results, read_traces
from agentwheel.study.config import PASS_K

Scores = dict[str, float]  # task id -> 1.0 passed / 0.0 failed (greedy, trial 0)


def greedy_episodes(eval_dir: Path, tasks: Sequence[Task]) -> dict[str, Trajectory]:
    """Per held-out task, its greedy episode; a task without one is an error (the arms
    must be compared on the same tasks)."""
    wanted = {t.id for t in tasks}
    done = latest_results(read_traces(eval_dir / TRACES).done)
    episodes = {t.task_id: t for t in done if t.trial == 0 and t.task_id in wanted}
    missing = wanted - set(episodes)
    if missing:
        raise ValueError(f"{eval_dir}: no episode for {len(missing)} held-out tasks")
    return episodes


def greedy_scores(episodes: Mapping[str, Trajectory]) -> Scores:
    """Per held-out task, whether its greedy episode (`greedy_episodes`) passed."""
    return {i: float(t.passed) for i, t in episodes.items()}


def failure_counts(episodes: Mapping[str, Trajectory]) -> dict[str, int]:
    """How many greedy held-out episodes missed each condition of the reward."""
    reasons = (r for t in episodes.values() for r in t.reward.failure_reasons())
    return dict(Counter(reasons).most_common())


def asked_again_share(episodes: Mapping[str, Trajectory]) -> float:
    """The share of greedy held-out episodes that asked the user again for a fact it had
    given: the habit RL found while the reward let it pass."""
    asked = sum(bool(t.reward.facts_asked_again) for t in episodes.values())
    return round(asked / len(episodes), 4)


def _rate(scores: Scores, ids: set[str]) -> float | None:
    rate = mean_or_none([v for t, v in scores.items() if t in ids])
    return None if rate is None else round(rate, 4)


def _summary(eval_dir: Path) -> dict[str, Any]:
    return json.loads((eval_dir / SUMMARY).read_text())


def arm_result(
    scores: Scores,
    tasks: Sequence[Task],
    unseen_workflows: set[str],
    sampled_dir: Path,
    train_pool_dir: Path,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """One arm's line of study.json."""
    sampled, train_pool = _summary(sampled_dir), _summary(train_pool_dir)
    by_kind = {k: _rate(scores, {t.id for t in tasks if t.branch_kind == k}) for k in BRANCH_KINDS}
    unseen = {t.id for t in tasks if t.lineage.source_workflow in unseen_workflows}
    return {
        "pass1": _rate(scores, set(scores)),
        "ci95": list(bootstrap_ci(scores, resamples, seed)),
        f"pass_hat_{PASS_K}": sampled["pass_hat_k"][str(PASS_K)],
        "by_branch_kind": by_kind,
        "unseen": _rate(scores, unseen),
        "seen": _rate(scores, set(scores) - unseen),
        "train_pool_pass1": train_pool["pass_hat_k"]["1"],
        "n_tasks": len(scores),
        f"pass_hat_{PASS_K}_by_branch_kind": {
            k: part["pass_hat_k"][str(PASS_K)] for k, part in sampled["by_branch_kind"].items()
        },
        f"pass_hat_{PASS_K}_tasks": sampled["n_tasks"],
        "train_pool_tasks": train_pool["n_tasks"],
    }


def differences(
    scores: Mapping[str, Scores], resamples: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Paired (by task) bootstrap intervals of greedy pass^1 differences."""
    pairs = {
        "flywheel_vs_sft": ("rl_flywheel", "sft"),
        "flywheel_vs_static": ("rl_flywheel", "rl_static"),
        "static_vs_sft": ("rl_static", "sft"),
    }
    return {
        name: paired_bootstrap(scores[a], scores[b], resamples, seed).model_dump(mode="json")
        for name, (a, b) in pairs.items()
    }


def goals(
    arms: Mapping[str, dict[str, Any]], diff: Mapping[str, dict[str, Any]], margin: float
) -> dict[str, Any]:
    """The issue's goals for rl_flywheel, each met or not, with the numbers that decide it."""
    fly, sft, refuse, static = (arms[a] for a in ("rl_flywheel", "sft", "refuse", "rl_static"))
    vs_sft = diff["flywheel_vs_sft"]
    below = {
        kind: {"sft": sft["by_branch_kind"][kind], "rl_flywheel": level}
        for kind, level in fly["by_branch_kind"].items()
        if level is not None
        and sft["by_branch_kind"][kind] is not None
        and level < sft["by_branch_kind"][kind]
    }
    out: dict[str, Any] = {
        "beats_sft": {
            "met": vs_sft["mean"] >= margin - 1e-9 and vs_sft["ci95"][0] > 0,
            "wanted": f"rl_flywheel - sft >= {margin:.2f} with the paired 95% interval above 0",
            "mean": vs_sft["mean"],
            "ci95": vs_sft["ci95"],
        },
        "no_kind_below_sft": {"met": not below, "below": below},
        "beats_refuse": {
            "met": fly["pass1"] >= refuse["pass1"] + margin - 1e-9,
            "wanted": f"rl_flywheel >= refuse + {margin:.2f}",
            "rl_flywheel": fly["pass1"],
            "refuse": refuse["pass1"],
        },
        "at_least_static": {
            "met": fly["pass1"] >= static["pass1"],
            "rl_flywheel": fly["pass1"],
            "rl_static": static["pass1"],
        },
    }
    out["all_met"] = all(g["met"] for g in out.values())
    return out
