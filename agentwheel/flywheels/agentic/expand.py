"""Workflows → behavior trees → branches → tasks, with statistics and counted rejections.

`expand_workflows` is the agentic flywheel's round-0 synthesis: each workflow is expanded
into a tree (procedurally unless another `TreeExpander` is given), its branches are
sampled under a per-workflow budget balanced over branch kinds, each sample becomes a
replay-checked task, and near-duplicate requests are dropped. Nothing in a bad workflow
raises: it becomes a rejection with its reason.

Two expanders implement `TreeExpander`: `ProceduralExpander` (procedural.py) and
`LLMExpander` (llm_expander/), whose teacher designs the tools as well as the tree. Such a
tree's tasks come from the teacher too (`expand_with_llm`), not from `instantiate`, which
builds SQLite worlds for workflow steps.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentwheel.core.rejection import Rejection
from agentwheel.core.task import BRANCH_KINDS, Task
from agentwheel.flywheels.agentic.branches import Branch, enumerate_branches, sample_tasks
from agentwheel.flywheels.agentic.instantiate import instantiate
from agentwheel.flywheels.agentic.procedural import ProceduralExpander
from agentwheel.flywheels.agentic.seeds import derive_seed
from agentwheel.flywheels.agentic.tree import BehaviorTree, TreeStats
from agentwheel.flywheels.agentic.workflow import Workflow
from agentwheel.flywheels.agentic.workflow_checks import check_workflow
from agentwheel.flywheels.agentic.workflow_loader import load_workflows, workflow_warnings
from agentwheel.flywheels.agentic.world import make_faker
from agentwheel.flywheels.agentic.world_invariants import task_rows, world_violations


class TreeExpander(Protocol):
    """Turns a workflow into a behavior tree (procedurally, or with a teacher model).

    Raises ValueError (a pydantic ValidationError included) when it cannot make a usable
    tree; `expand_workflows` counts that as a rejection of the workflow.
    """

    name: str

    def expand(self, workflow: Workflow, seed: int) -> BehaviorTree: ...


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkflowStats(_Report):
    workflow: str
    domain: str
    tree: TreeStats
    branches: int
    tasks: int
    tasks_by_kind: dict[str, int]
    attempts: int
    near_duplicates: int
    rejections: int
    warnings: list[str] = Field(default_factory=list)
    # Worlds of the written tasks checked against the workflow's invariants, and how many
    # broke one (always 0: a world that breaks one is rejected while it is built).
    worlds_checked: int = 0
    world_violations: int = 0


class ExpansionStats(_Report):
    seed: int
    expander: str
    workflows: int
    workflows_rejected: int
    tasks: int
    tasks_by_domain: dict[str, int]
    tasks_by_kind: dict[str, int]
    near_duplicates: int
    rejections: int
    rejections_by_stage: dict[str, int]
    seconds: float
    per_workflow: list[WorkflowStats]


def expand_workflow(
    workflow: Workflow,
    tree: BehaviorTree,
    seed: int,
    tasks_per_workflow: int,
    near_duplicate_threshold: float = 0.8,
    boundary_rate: float = 0.25,
    prefer: Callable[[Branch], bool] | None = None,
) -> tuple[list[Task], WorkflowStats, list[Rejection]]:
    """Tasks from one tree's branches, balanced over kinds, near-duplicates dropped
    (`prefer`: see `sample_tasks`)."""
    branches = enumerate_branches(tree)
    fake = make_faker(seed)

    def make(branch: Branch, instance: int) -> Task | Rejection:
        return instantiate(workflow, tree, branch, instance, seed, boundary_rate, fake)

    tasks, report = sample_tasks(
        branches,
        tasks_per_workflow,
        make,
        derive_seed(seed, workflow.id, "sample"),
        near_duplicate_threshold,
        prefer=prefer,
    )
    stats = WorkflowStats(
        workflow=workflow.id,
        domain=workflow.domain,
        tree=tree.stats(),
        branches=len(branches),
        tasks=len(tasks),
        tasks_by_kind=report.by_kind,
        attempts=report.attempts,
        near_duplicates=report.near_duplicates,
        rejections=len(report.rejections),
        warnings=[f"{field}: {message}" for field, message in workflow_warnings(workflow)],
        worlds_checked=sum(t.sqlite is not None for t in tasks),
        world_violations=sum(
            bool(world_violations(workflow, task_rows(workflow, t.sqlite.tables)))
            for t in tasks
            if t.sqlite is not None
        ),
    )
    return tasks, stats, report.rejections


def expand_workflows(
    workflows: Iterable[Workflow | str | Path] | str | Path | None = None,
    seed: int = 0,
    tasks_per_workflow: int = 40,
    *,
    expander: TreeExpander | None = None,
    near_duplicate_threshold: float = 0.8,
    boundary_rate: float = 0.25,
    prefer: Callable[[Branch], bool] | None = None,
) -> tuple[list[Task], ExpansionStats, list[Rejection]]:
    """Expand workflows (objects, files, a directory, or None = the bundled ones) into tasks.

    Returns the tasks, statistics (per workflow: tree depth, branching, leaves, kind mix;
    overall: counts by domain and kind, near-duplicates, rejections, seconds) and every
    rejection (bad workflow files, unbuildable worlds, failed replays).
    """
    start = time.perf_counter()
    expander = expander or ProceduralExpander()
    loaded: list[Workflow] = []
    rejections: list[Rejection] = []
    if workflows is None or isinstance(workflows, str | Path):
        loaded, rejections = load_workflows(workflows)
    else:
        paths: list[str | Path] = []
        for item in workflows:
            if not isinstance(item, Workflow):
                paths.append(item)
                continue
            # Objects built in code skip the loader, so they get its cross-field checks here.
            problems = check_workflow(item)
            if problems:
                field, message = problems[0]
                rejections.append(
                    Rejection(
                        stage="load",
                        item=item.source or item.id,
                        reason="invalid_workflow",
                        detail=message,
                        field=field,
                    )
                )
            else:
                loaded.append(item)
        if paths:
            more, failed = load_workflows(paths)
            loaded += more
            rejections += failed
    load_rejections = len(rejections)
    tasks: list[Task] = []
    per_workflow: list[WorkflowStats] = []
    for workflow in loaded:
        try:
            tree = expander.expand(workflow, seed)
        except (ValueError, ValidationError) as exc:
            # An expander (an LLM one especially) can produce an unusable tree.
            rejections.append(
                Rejection(stage="expand", item=workflow.id, reason="unusable_tree", detail=str(exc))
            )
            continue
        if tree.tools:
            detail = "the tree runs tools of its own; its tasks come from its expander"
            rejections.append(
                Rejection(stage="expand", item=workflow.id, reason="own_tools", detail=detail)
            )
            continue
        made, stats, rejected = expand_workflow(
            workflow,
            tree,
            seed,
            tasks_per_workflow,
            near_duplicate_threshold,
            boundary_rate,
            prefer,
        )
        tasks += made
        per_workflow.append(stats)
        rejections += rejected
    kinds = Counter(t.branch_kind for t in tasks)
    summary = ExpansionStats(
        seed=seed,
        expander=expander.name,
        workflows=len(loaded),
        workflows_rejected=load_rejections,
        tasks=len(tasks),
        tasks_by_domain=dict(sorted(Counter(t.domain for t in tasks).items())),
        tasks_by_kind={k: kinds[k] for k in BRANCH_KINDS if kinds[k]},
        near_duplicates=sum(s.near_duplicates for s in per_workflow),
        rejections=len(rejections),
        rejections_by_stage=dict(sorted(Counter(r.stage for r in rejections).items())),
        seconds=round(time.perf_counter() - start, 3),
        per_workflow=per_workflow,
    )
    return tasks, summary, rejections
