"""The eval stage: run k trials of every task, stream traces to disk, summarise pass^k.

Traces are appended one JSON line per finished episode and flushed as they finish, so a
killed run loses at most the episodes in flight. `resume=True` skips (task, trial) pairs
already on disk, but only when they were made with the same settings (policy, back-end,
user, sampling, limits: recorded in `eval_key.json`), and runs again the episodes that
ended on a model or user-simulator failure (a server outage is not a result), and only
into a traces file of the same task set. One run writes to a directory at a time (a lock
in it), so two resumed runs never run every episode twice.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.dataset import LoadError
from agentwheel.core.dir_lock import directory_lock
from agentwheel.core.jsonl import end_torn_tail, read_jsonl
from agentwheel.core.run_layout import EVAL_KEY, SUMMARY, TRACES
from agentwheel.core.run_settings import changed_settings
from agentwheel.core.stats import mean
from agentwheel.core.task import BRANCH_KINDS, Task
from agentwheel.envs.agent import Policy
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.tools import ToolSimulator
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.user import UserSimulator
from agentwheel.eval.cost import cost_report
from agentwheel.eval.passk import pass_hat_curve
from agentwheel.eval.stances import stance_matrix
from agentwheel.settings.runner import RunnerConfig

FAILED_TERMINATIONS = frozenset({"model_error", "user_error"})


class ResumeMismatch(ValueError):
    """Traces on disk were made with other settings than this run's."""


class UnreadableSummary(ValueError):
    """A summary.json that is not the one an eval run writes."""


def read_summary(run_dir: Path) -> dict[str, Any]:
    """An eval run's summary.json; `UnreadableSummary` says what is wrong with it (missing,
    not JSON, not a mapping, no `tasks`)."""
    path = run_dir / SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnreadableSummary(
            f"{run_dir} has no {SUMMARY}: run `agentwheel eval --out {run_dir}` first"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnreadableSummary(f"{path} is not valid JSON ({exc}): rerun the eval") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("tasks"), str):
        raise UnreadableSummary(
            f"{path} is not an eval summary (it names no evaluated `tasks`): rerun the eval"
        )
    return summary


class ResumeState(BaseModel):
    done: list[Trajectory]
    skipped: list[str] = []  # `file:line: why` of each unreadable line

    @property
    def corrupt_lines(self) -> int:
        return len(self.skipped)


def read_traces(path: Path) -> ResumeState:
    """Finished trajectories on disk; a line that is not one (torn by a kill, not UTF-8) is
    skipped and reported with its file and line."""
    done, rejections = read_jsonl(path, Trajectory, stage="traces")
    return ResumeState(done=done, skipped=[f"{r.item}: {r.detail or r.reason}" for r in rejections])


class TraceWriter:
    """Appends trajectories as JSON lines, flushed and fsynced one by one."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        end_torn_tail(path)
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, trajectory: Trajectory) -> None:
        self._handle.write(trajectory.model_dump_json() + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def eval_key(policy: Policy, config: RunnerConfig, meta: dict[str, Any]) -> dict[str, Any]:
    """What decides an episode's outcome besides the task: episodes made under another key
    are never reused by a resumed run."""
    return {
        "policy": meta.get("policy", getattr(policy, "name", "policy")),
        "backend": config.backend,
        "user": meta.get("user", "scripted"),
        "tool_simulator": meta.get("tool_simulator"),
        "sampling": meta.get("sampling"),
        "max_agent_turns": config.max_agent_turns,
        "max_episode_tokens": config.max_episode_tokens,
    }


def check_resume_key(out: Path, key: dict[str, Any]) -> None:
    """Raise `ResumeMismatch` naming every setting that differs from the one on disk."""
    path = out / EVAL_KEY
    if not path.exists():
        return
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    differ = changed_settings(on_disk, key)
    if differ:
        raise ResumeMismatch(
            f"{out} holds episodes made with other settings ({'; '.join(differ)}): "
            "use another --out, or the same settings to resume"
        )


def latest_results(trajectories: Iterable[Trajectory]) -> list[Trajectory]:
    """One trajectory per (task, trial): the last one that did not fail."""
    latest: dict[tuple[str, int], Trajectory] = {}
    for t in trajectories:
        if t.termination not in FAILED_TERMINATIONS:
            latest[(t.task_id, t.trial)] = t
    return list(latest.values())


def _group_pass(trajectories: Iterable[Trajectory], k: int) -> dict[str, Any]:
    by_task: dict[str, list[bool]] = defaultdict(list)
    for t in trajectories:
        by_task[t.task_id].append(t.passed)
    complete = {tid: r for tid, r in by_task.items() if len(r) >= k}
    curve = pass_hat_curve(complete, k) if complete else {i: 0.0 for i in range(1, k + 1)}
    return {"n_tasks": len(complete), "pass_hat_k": {str(i): v for i, v in curve.items()}}


def summarize(
    trajectories: Sequence[Trajectory],
    k: int,
    meta: dict[str, Any] | None = None,
    load_errors: Sequence[LoadError] = (),
) -> dict[str, Any]:
    """The summary written as summary.json (pass^k overall, by domain, by branch kind)."""
    overall = _group_pass(trajectories, k)
    domains = sorted({t.domain for t in trajectories})
    kinds = [b for b in BRANCH_KINDS if any(t.branch_kind == b for t in trajectories)]
    invalid: Counter[str] = Counter()
    tool_errors: Counter[str] = Counter()
    for t in trajectories:
        invalid.update(t.counts.invalid_tool_calls)
        tool_errors.update(t.counts.tool_errors)
    model_s = sum(t.timings.model_s for t in trajectories)
    return {
        **(meta or {}),
        "k": k,
        "n_tasks": overall["n_tasks"],
        "n_episodes": len(trajectories),
        "pass_hat_k": overall["pass_hat_k"],
        "by_domain": {
            d: _group_pass([t for t in trajectories if t.domain == d], k) for d in domains
        },
        "by_branch_kind": {
            b: _group_pass([t for t in trajectories if t.branch_kind == b], k) for b in kinds
        },
        "terminations": dict(Counter(t.termination for t in trajectories)),
        "failure_reasons": dict(
            Counter(r for t in trajectories for r in t.reward.failure_reasons()).most_common()
        ),
        "stances": stance_matrix(trajectories),
        "invalid_tool_calls": dict(invalid),
        "tool_errors": dict(tool_errors),
        "mean_agent_turns": _mean([t.counts.agent_turns for t in trajectories]),
        "mean_generated_tokens": _mean([t.counts.generated_tokens for t in trajectories]),
        "model_seconds": round(model_s, 3),
        "cost": cost_report(trajectories),
        "load_errors": [str(e) for e in load_errors],
    }


def _mean(values: Sequence[float]) -> float:
    return round(mean(values), 3)


def run_eval(
    tasks: Sequence[Task],
    policy: Policy,
    user: UserSimulator,
    k: int,
    out: Path,
    config: RunnerConfig,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    load_errors: Sequence[LoadError] = (),
    on_episode: Callable[[Trajectory], None] | None = None,
    tool_simulator: ToolSimulator | None = None,
) -> dict[str, Any]:
    """Run k trials per task (skipping finished ones when resuming) and write summary.json.
    Holds `out`'s lock throughout: a second run on `out` raises `DirectoryBusy`."""
    with directory_lock(out):
        return _run_eval(
            tasks, policy, user, k, out, config, resume, meta, load_errors, on_episode,
            tool_simulator,
        )  # fmt: skip


def _run_eval(
    tasks: Sequence[Task],
    policy: Policy,
    user: UserSimulator,
    k: int,
    out: Path,
    config: RunnerConfig,
    resume: bool,
    meta: dict[str, Any] | None,
    load_errors: Sequence[LoadError],
    on_episode: Callable[[Trajectory], None] | None,
    tool_simulator: ToolSimulator | None,
) -> dict[str, Any]:
    traces_path = out / TRACES
    if traces_path.exists() and not resume:
        raise FileExistsError(
            f"{traces_path} exists: pass --resume to continue it, or another --out"
        )
    key = eval_key(policy, config, {"policy": getattr(policy, "name", "policy"), **(meta or {})})
    if resume:
        check_resume_key(out, key)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / EVAL_KEY, json.dumps(key, indent=2, ensure_ascii=False))
    state = read_traces(traces_path) if resume else ResumeState(done=[])
    wanted = {t.id for t in tasks}
    foreign = sorted({t.task_id for t in state.done} - wanted)
    if foreign:
        raise ResumeMismatch(
            f"{traces_path} holds episodes of {len(foreign)} tasks not in this task set "
            f"(e.g. {foreign[0]}): resume with the tasks it was made with, or use another --out"
        )
    done = [t for t in latest_results(state.done) if t.task_id in wanted and t.trial < k]
    finished_keys = {(t.task_id, t.trial) for t in done}
    retried = len(
        {(t.task_id, t.trial) for t in state.done if t.termination in FAILED_TERMINATIONS}
        - finished_keys
    )
    specs = [
        EpisodeSpec(task=task, trial=trial)
        for trial in range(k)
        for task in tasks
        if (task.id, trial) not in finished_keys
    ]
    writer = TraceWriter(traces_path)
    new: list[Trajectory] = []

    def record(trajectory: Trajectory) -> None:
        writer.write(trajectory)
        new.append(trajectory)
        if on_episode is not None:
            on_episode(trajectory)

    start = time.perf_counter()
    try:
        EpisodeRunner(policy, user, config, tool_simulator).run(specs, on_finished=record)
    finally:
        writer.close()
    wall = time.perf_counter() - start
    summary = summarize(
        [*done, *new],
        k,
        meta={
            "policy": getattr(policy, "name", "policy"),
            **(meta or {}),
            "resumed_episodes": len(done),
            "retried_failed_episodes": retried,
            "corrupt_trace_lines": state.corrupt_lines,
            "skipped_trace_lines": state.skipped[:20],
            "wall_seconds": round(wall, 3),
        },
        load_errors=load_errors,
    )
    write_text_atomic(out / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False))
    return summary
