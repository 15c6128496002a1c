"""What a directory holds for the browser: its episode groups (every traces file under it,
from an eval, a round's rollouts or probe, the band samples) and the tasks behind them.

A run directory (it has the run's state file) is read in run order: the held-out evals
base, after SFT, after each round, then each round's files. Any other directory with
traces is an eval directory, or several side by side; one with tasks only is a task set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentwheel.core.dataset import load_tasks, resolve_dataset
from agentwheel.core.run_layout import (
    BAND_TRACES,
    CHECKPOINTS_DIR,
    EVALS_DIR,
    PLOTS_DIR,
    ROUNDS_DIR,
    STATE,
    SUMMARY,
    TASKS_FILE,
    TENSORBOARD_DIR,
    TRACES,
    WANDB_DIR,
    round_number,
    stage_label,
    stage_rank,
)
from agentwheel.core.task import Task
from agentwheel.view.page_data import GroupView

SKIPPED_DIRS = frozenset({CHECKPOINTS_DIR, TENSORBOARD_DIR, PLOTS_DIR, WANDB_DIR})
SUMMARY_KEYS = (
    "policy",
    "stage",
    "tasks",
    "k",
    "n_tasks",
    "n_episodes",
    "pass_hat_k",
    "by_branch_kind",
    "by_domain",
    "terminations",
    "wall_seconds",
)


@dataclass
class Source:
    kind: str  # run | eval | tasks
    root: Path
    groups: list[tuple[GroupView, Path]] = field(default_factory=list)  # with its traces file


def is_run_dir(path: Path) -> bool:
    return (path / STATE).is_file()


def trace_files(root: Path) -> list[Path]:
    """Every traces file under `root`, skipping checkpoints and logger folders."""
    found = []
    for name in (TRACES, BAND_TRACES):
        for path in root.rglob(name):
            if not SKIPPED_DIRS & set(path.relative_to(root).parts[:-1]):
                found.append(path)
    return found


def describe_group(root: Path, traces: Path) -> GroupView:
    """The group's role and label from where its traces file sits in a run directory."""
    folder = traces.parent
    rel = folder.relative_to(root).as_posix() if folder != root else "."
    parts = folder.relative_to(root).parts
    summary = read_summary(folder) if traces.name == TRACES else {}
    if traces.name == BAND_TRACES:
        rel = traces.relative_to(root).as_posix()
    if len(parts) == 2 and parts[0] == EVALS_DIR:
        stage = parts[1]
        n = round_number(stage)
        return GroupView(
            name=rel,
            label=stage_label(stage),
            role="held-out eval",
            stage=stage,
            round=n,
            summary=summary,
        )
    if len(parts) >= 2 and parts[0] == ROUNDS_DIR and round_number(parts[1]) is not None:
        n = round_number(parts[1])
        role = {"rollouts": "rollouts", "probe": "probe"}.get(parts[-1], "band samples")
        if traces.name == BAND_TRACES:
            role = "band samples"
        return GroupView(name=rel, label=f"round {n} {role}", role=role, round=n, summary=summary)
    label = str(summary.get("policy") or folder.name) if rel == "." else rel
    return GroupView(name=rel, label=label, role="eval", summary=summary)


def read_summary(folder: Path) -> dict[str, Any]:
    path = folder / SUMMARY
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return {k: data[k] for k in SUMMARY_KEYS if k in data} if isinstance(data, dict) else {}


def _order(group: GroupView) -> tuple[int, int, str]:
    if group.role == "held-out eval":
        return (0, stage_rank(group.stage), group.name)
    if group.round is not None:
        return (1, group.round, group.name)
    return (2, 0, group.name)


def find_source(root: Path) -> Source:
    """The groups under `root`, in run order; raises FileNotFoundError when it holds
    neither episodes nor tasks."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory: pass a run, eval or task directory")
    groups = sorted(
        ((describe_group(root, path), path) for path in trace_files(root)),
        key=lambda pair: _order(pair[0]),
    )
    if groups:
        return Source(kind="run" if is_run_dir(root) else "eval", root=root, groups=groups)
    try:
        resolve_dataset(root)
        return Source(kind="tasks", root=root)
    except FileNotFoundError:
        pass
    raise FileNotFoundError(
        f"{root} holds no {TRACES} and no tasks: pass a run directory (agentwheel train "
        "--out), an eval directory (agentwheel eval --out) or a task directory"
    )


def task_specs(source: Source) -> list[str]:
    """Where the tasks behind the episodes are: the task set each eval recorded (moved
    with the run when it was moved) and every task file under the directory."""
    specs: list[str] = []
    for group, _ in source.groups:
        recorded = group.summary.get("tasks")
        if isinstance(recorded, str) and recorded:
            specs.append(_relocated(recorded, source.root))
    specs += [str(p) for p in sorted(source.root.rglob(TASKS_FILE))]
    if source.kind == "tasks":
        specs.append(str(source.root))
    return list(dict.fromkeys(specs))


def _relocated(recorded: str, root: Path) -> str:
    """A recorded task path that does not exist from here (a run directory copied
    elsewhere, a path relative to where the run started), found under `root` by its tail;
    else as recorded (a bundled name such as `fixtures`)."""
    path = Path(recorded)
    if path.exists() or len(path.parts) == 1:
        return recorded
    parts = path.parts
    for start in range(len(parts)):
        candidate = root.joinpath(*parts[start:])
        if candidate.exists():
            return str(candidate)
    return recorded


def load_task_index(specs: list[str]) -> tuple[dict[str, Task], list[str]]:
    """Tasks by id from every source (the first one read wins), and a warning per source
    that could not be read."""
    tasks: dict[str, Task] = {}
    warnings: list[str] = []
    for spec in specs:
        try:
            task_set = load_tasks(spec)
        except (FileNotFoundError, ValueError, OSError) as exc:
            warnings.append(f"tasks {spec}: {exc}")
            continue
        for task in task_set.tasks:
            tasks.setdefault(task.id, task)
        warnings += [f"tasks: {e}" for e in task_set.errors[:5]]
    return tasks, warnings
