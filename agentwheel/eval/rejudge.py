"""Judge saved episodes again under today's reward, without running them again.

A verdict is what the environment measured at the end (the final state, whether a hack
action ran; both kept in every trace) plus what the transcript shows (signals, outputs,
actions off the normal path, facts asked again), and traces keep the transcript whole. So
when the reward's rules change, an eval's episodes are judged again from its traces:
`rejudge_eval` rewrites a directory's traces.jsonl and summary.json under the current
rules and counts the verdicts that changed. A trace line it cannot read is kept as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from agentwheel.core.atomic import write_text_atomic, write_with
from agentwheel.core.run_layout import SUMMARY, TRACES
from agentwheel.core.task import Task
from agentwheel.envs.reward import Measured, judge
from agentwheel.envs.trajectory import Trajectory
from agentwheel.eval.evaluate import latest_results, summarize


class RejudgeError(ValueError):
    """The eval directory cannot be judged again (nothing was written)."""


@dataclass(frozen=True)
class Rejudged:
    episodes: int
    passed_before: int
    passed_after: int
    changed: int  # episodes whose verdict flipped

    def describe(self) -> str:
        return (
            f"{self.episodes} episodes judged again: {self.passed_before} passed before, "
            f"{self.passed_after} now ({self.changed} verdicts changed)"
        )


def rejudge(trajectory: Trajectory, task: Task) -> Trajectory:
    """The episode with its reward judged under today's rules."""
    stored = trajectory.reward
    measured = Measured(stored.final_state, stored.hack_action_ran, stored.expected_state)
    return trajectory.model_copy(update={"reward": judge(task, trajectory.messages, measured)})


def rejudge_eval(eval_dir: Path, tasks: Mapping[str, Task]) -> Rejudged:
    """Judge every episode in `eval_dir` again; rewrite its traces and summary."""
    traces, summary_path = eval_dir / TRACES, eval_dir / SUMMARY
    if not traces.is_file():
        raise RejudgeError(f"{eval_dir} has no {TRACES}")
    lines, episodes = _read(traces)
    unknown = sorted({t.task_id for _, t in episodes} - set(tasks))
    if unknown:
        raise RejudgeError(
            f"{traces}: {len(unknown)} episodes' tasks are not in the task set given "
            f"(e.g. {unknown[0]}): give the tasks the eval ran on"
        )
    after = {i: rejudge(t, tasks[t.task_id]) for i, t in episodes}
    before = dict(episodes)
    new_lines = [
        after[i].model_dump_json().encode() + b"\n" if i in after else line
        for i, line in enumerate(lines)
    ]
    write_with(traces, lambda tmp: tmp.write_bytes(b"".join(new_lines)))
    if summary_path.is_file():
        _rewrite_summary(summary_path, list(after.values()))
    return Rejudged(
        episodes=len(after),
        passed_before=sum(t.passed for t in before.values()),
        passed_after=sum(t.passed for t in after.values()),
        changed=sum(before[i].passed != after[i].passed for i in after),
    )


def _read(traces: Path) -> tuple[list[bytes], list[tuple[int, Trajectory]]]:
    lines = traces.read_bytes().splitlines(True)
    episodes = []
    for i, line in enumerate(lines):
        try:
            episodes.append((i, Trajectory.model_validate_json(line)))
        except (ValidationError, ValueError):
            if not line.endswith(b"\n"):
                lines[i] = line + b"\n"
    return lines, episodes


def _rewrite_summary(path: Path, trajectories: list[Trajectory]) -> None:
    old = json.loads(path.read_text())
    fresh = summarize(latest_results(trajectories), int(old.get("k", 1)))
    fresh["load_errors"] = old.get("load_errors", [])
    write_text_atomic(path, json.dumps({**old, **fresh}, indent=2, ensure_ascii=False))
