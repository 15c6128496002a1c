"""A directory (run, eval or tasks) → the data of its browser page."""

from __future__ import annotations

import time
from pathlib import Path

from agentwheel.eval.evaluate import read_traces
from agentwheel.view.episodes import PromptTable, episode_view, task_as_episode, task_view
from agentwheel.view.page_data import GroupView, PageData
from agentwheel.view.run_overview import run_view
from agentwheel.view.sources import find_source, load_task_index, task_specs
from agentwheel.view.state_diff import StateDiffs


def build_page_data(root: Path) -> PageData:
    """Everything the page shows about `root`; raises FileNotFoundError when it holds
    neither episodes nor tasks. Unreadable trace lines are skipped and listed."""
    root = Path(root)
    source = find_source(root)
    tasks, warnings = load_task_index(task_specs(source))
    data = PageData(
        title=root.resolve().name,
        source=str(root.resolve()),
        kind=source.kind,
        created=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        warnings=warnings,
    )
    prompts = PromptTable()
    diffs = StateDiffs()
    used: set[str] = set()
    for index, (group, traces) in enumerate(source.groups):
        state = read_traces(traces)
        group.skipped_lines = state.skipped[:20]
        data.groups.append(group)
        for trajectory in state.done:
            task = tasks.get(trajectory.task_id)
            data.episodes.append(episode_view(trajectory, task, index, prompts, diffs))
            if task is not None:
                used.add(task.id)
    if source.kind == "tasks":
        data.groups.append(GroupView(name=".", label="tasks", role="tasks"))
        data.episodes = [task_as_episode(t, 0) for t in tasks.values()]
        used = set(tasks)
    missing = {e.task for e in data.episodes} - set(tasks)
    if missing:
        where = sorted({data.groups[e.group].label for e in data.episodes if e.task in missing})
        data.warnings.append(
            f"{len(missing)} tasks of {', '.join(where)} not found (their episodes show "
            f"without policy text, tools or state diff), e.g. {sorted(missing)[0]}"
        )
    data.tasks = {tid: task_view(tasks[tid]) for tid in sorted(used)}
    data.prompts = prompts.texts
    if source.kind == "run":
        data.run = run_view(root, data.groups)
    return data
