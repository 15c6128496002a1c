"""The agentic flywheel step: grow harder trees where the current policy fails.

From an eval (or rollout) report: per source workflow, the trees whose branches the
policy fails and the trees it has saturated (always passes) get new tasks from the
chosen operators:

- `deepen`: the tree is expanded one level deeper (one more precondition to check, one
  more escape strategy for the user, and every check nested below each "identifier
  missing" node, so the agent must ask and then refuse or act). Within each branch kind,
  tasks come from the branches the parent tree did not have, where there are any.
  Failing trees keep every new task of a branch kind the policy failed, and a third of
  the others.
- `lookup` (`lookup.py`): the user does not know the record's id, only what it is, so the
  agent must list the user's records and pick the one described: one more call and one
  more reasoning hop. Stacked on `deepen`, it turns each deepened task it applies to into
  a `deepen+lookup` variant; alone, it applies to fresh tasks of the parent's depth.

The new tasks go through the validation gate, then the learnable band: the current
policy attempts each n times, and a task is kept only if its pass rate lies strictly
between 0 and 1. Lineage records the parent tree, the round and the operator.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentwheel.core.dataset import load_tasks
from agentwheel.core.rejection import Rejection
from agentwheel.core.run_layout import BAND_TRACES
from agentwheel.core.task import Lineage, Task
from agentwheel.envs.agent import Policy
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.user import ScriptedUser
from agentwheel.eval.evaluate import TRACES, TraceWriter, read_summary, read_traces
from agentwheel.flywheels.agentic.branches import Branch, enumerate_branches
from agentwheel.flywheels.agentic.expand import expand_workflows
from agentwheel.flywheels.agentic.lookup import LOOKUP, lookup_task
from agentwheel.flywheels.agentic.procedural import ProceduralExpander
from agentwheel.flywheels.agentic.synth import counts_by_reason, gate, write_stage_output
from agentwheel.flywheels.agentic.tree import BehaviorTree
from agentwheel.flywheels.agentic.workflow import Workflow
from agentwheel.flywheels.agentic.workflow_loader import load_workflows
from agentwheel.settings.runner import RunnerConfig

DEEPEN = "deepen"
OPERATORS = (DEEPEN, LOOKUP)
# Episodes of the band probe (every validated evolved task, `samples` times each).


class TreeVerdict(BaseModel):
    workflow: str
    round: int
    episodes: int
    pass_rate: float
    failed_kinds: list[str]

    @property
    def saturated(self) -> bool:
        return self.pass_rate == 1.0


class EvolveManifest(BaseModel):
    stage: str = "evolve_agentic"
    report: str
    policy: str
    # The policy the report was made with: parent and evolved pass rates compare like
    # with like only when it is `policy`.
    report_policy: str = ""
    round: int
    trees: list[TreeVerdict]
    skipped_sources: list[str] = Field(default_factory=list)
    generated: int
    validated: int
    band: dict[str, int]
    tasks: int
    tasks_by_kind: dict[str, int]
    operators: list[str] = Field(default_factory=lambda: [DEEPEN])
    tasks_by_operator: dict[str, int] = Field(default_factory=dict)
    lookup_not_applicable: dict[str, int] = Field(default_factory=dict)
    rejections_by_reason: dict[str, int]
    parent_tree_shape: dict[str, float]
    evolved_tree_shape: dict[str, float]
    parent_pass_rate: float
    evolved_pass_rate: float | None
    evolved_pass_rate_by_operator: dict[str, float] = Field(default_factory=dict)
    # Like for like: the same branch kind before and after (the kind mix can differ).
    parent_pass_rate_by_kind: dict[str, float] = Field(default_factory=dict)
    evolved_pass_rate_by_kind: dict[str, float] = Field(default_factory=dict)


def tree_verdicts(trajectories: Sequence[Trajectory], tasks: dict[str, Task]) -> list[TreeVerdict]:
    """Pass rate and failed branch kinds per (source workflow, round)."""
    groups: dict[tuple[str, int], list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        task = tasks.get(t.task_id)
        if task is not None:
            groups[(task.lineage.source_workflow, task.lineage.round)].append(t)
    verdicts = []
    for (workflow, round_), group in sorted(groups.items()):
        failed = sorted({t.branch_kind for t in group if not t.passed})
        rate = sum(t.passed for t in group) / len(group)
        verdicts.append(
            TreeVerdict(
                workflow=workflow,
                round=round_,
                episodes=len(group),
                pass_rate=rate,
                failed_kinds=failed,
            )
        )
    return verdicts


def deeper_expander(round_: int) -> ProceduralExpander:
    """The expander of round r+1: one more precondition, one more escape strategy, and the
    checks nested below each missing identifier (ask, then refuse or act)."""
    return ProceduralExpander(
        extra_conditions=round_ + 1, push_strategies=3 + round_, nest_clarify=True
    )


def not_in(tree: BehaviorTree) -> Callable[[Branch], bool]:
    """Whether a branch of a grown tree is one `tree` did not have."""
    known = {b.id for b in enumerate_branches(tree)}
    return lambda branch: branch.id not in known


def focus_on_failures(tasks: Sequence[Task], verdict: TreeVerdict) -> list[Task]:
    if verdict.saturated:
        return list(tasks)
    focused = [t for t in tasks if t.branch_kind in verdict.failed_kinds]
    others = [t for t in tasks if t.branch_kind not in verdict.failed_kinds]
    return focused + others[: max(1, len(others) // 3)]


def with_lineage(task: Task, verdict: TreeVerdict, operator: str | None = DEEPEN) -> Task:
    parent = f"{verdict.workflow}@round{verdict.round}"
    lineage = Lineage(
        source_workflow=verdict.workflow,
        branch=task.lineage.branch,
        round=verdict.round + 1,
        parent_id=parent,
        operator=operator,
    )
    return task.model_copy(update={"id": f"{task.id}-r{verdict.round + 1}", "lineage": lineage})


def mix_variants(
    plain: Sequence[Task], variants: dict[str, Task], budget: int, keep_plain: bool
) -> list[Task]:
    """At most `budget` tasks of one tree: every lookup variant (`variants`, keyed by the
    id of the plain task it was made from) first, since they are the harder ones; then,
    with `keep_plain`, the plain tasks lookup does not apply to (transfers, refusals over
    someone else's record, the clarify branch of the hidden id: kinds only they cover),
    then the plain twins of variants. Output follows the plain tasks' order, a variant
    right before its twin.
    """
    twins = [t.id for t in plain if t.id in variants]
    alone = [t.id for t in plain if t.id not in variants]
    chosen = set(twins[:budget])
    room = budget - len(chosen)
    plain_ids = set((alone + twins)[:room]) if keep_plain else set()
    out: list[Task] = []
    for task in plain:
        if task.id in chosen:
            out.append(variants[task.id])
        if task.id in plain_ids:
            out.append(task)
    return out


def pass_rates(
    tasks: Sequence[Task],
    policy: Policy,
    samples: int,
    config: RunnerConfig,
    traces: Path | None = None,
) -> dict[str, float]:
    """Each task's pass rate over `samples` episodes; the episodes go to `traces` if given."""
    specs = [EpisodeSpec(task, trial=i) for i in range(samples) for task in tasks]
    results: dict[str, list[bool]] = defaultdict(list)
    writer = TraceWriter(traces) if traces is not None else None
    try:
        for trajectory in EpisodeRunner(policy, ScriptedUser(), config).run(specs):
            results[trajectory.task_id].append(trajectory.passed)
            if writer is not None:
                writer.write(trajectory)
    finally:
        if writer is not None:
            writer.close()
    return {tid: sum(r) / len(r) for tid, r in results.items()}


def mean_by(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Mean value per key of (key, value) pairs, keys sorted."""
    groups: dict[str, list[float]] = defaultdict(list)
    for key, value in pairs:
        groups[key].append(value)
    return {key: round(sum(v) / len(v), 4) for key, v in sorted(groups.items())}


def rate_by_operator(tasks: Sequence[Task], rates: dict[str, float]) -> dict[str, float]:
    return mean_by((t.lineage.operator or "none", rates[t.id]) for t in tasks)


def rate_by_kind(tasks: Sequence[Task], rates: dict[str, float]) -> dict[str, float]:
    return mean_by((t.branch_kind, rates[t.id]) for t in tasks)


def learnable_band(rates: dict[str, float]) -> tuple[set[str], dict[str, int]]:
    keep = {tid for tid, r in rates.items() if 0.0 < r < 1.0}
    counts = {
        "kept": len(keep),
        "too_easy": sum(r == 1.0 for r in rates.values()),
        "too_hard": sum(r == 0.0 for r in rates.values()),
    }
    return keep, counts


def report_tasks(report_dir: Path, recorded: str) -> str | Path:
    """The tasks a report evaluated: a relative path is taken from the report's directory
    (so the report can be read from anywhere); reports that recorded it relative to where
    they were made, and bundled dataset names, are still found."""
    path = Path(recorded)
    if path.is_absolute():
        return path
    if (report_dir / path).exists():
        return report_dir / path
    return recorded


def evolve_agentic(
    report_dir: Path,
    policy: Policy,
    out: Path,
    samples: int = 4,
    tasks_per_workflow: int = 24,
    seed: int = 0,
    use_band: bool = True,
    workflows: str | Path | None = None,
    config: RunnerConfig | None = None,
    operators: Sequence[str] = OPERATORS,
) -> EvolveManifest:
    """One flywheel step from an eval report directory; writes the stage output to `out`.

    `operators` picks how new tasks are made (see the module docstring): `deepen`,
    `lookup`, or both. With both, each tree's budget (`tasks_per_workflow`) goes to the
    `deepen+lookup` variants first and then to deepened tasks (`mix_variants`).
    """
    unknown = sorted(set(operators) - set(OPERATORS))
    if unknown or not operators:
        raise ValueError(f"operators must be a non-empty subset of {OPERATORS}, got {operators}")
    deepen = DEEPEN in operators
    summary = read_summary(report_dir)
    trajectories = read_traces(report_dir / TRACES).done
    evaluated = {t.id: t for t in load_tasks(report_tasks(report_dir, summary["tasks"])).tasks}
    verdicts = tree_verdicts(trajectories, evaluated)
    known, _ = load_workflows(workflows)
    by_id: dict[str, Workflow] = {w.id: w for w in known}
    skipped = sorted({v.workflow for v in verdicts if v.workflow not in by_id})
    evolvable = [v for v in verdicts if v.workflow in by_id]
    new_tasks: list[Task] = []
    expansion_rejections: list[Rejection] = []
    parent_shapes: list[Any] = []
    child_shapes: list[Any] = []
    not_applicable: Counter[str] = Counter()
    for verdict in evolvable:
        workflow = by_id[verdict.workflow]
        parent_expander = ProceduralExpander(
            extra_conditions=verdict.round, push_strategies=2 + verdict.round
        )
        parent_tree = parent_expander.expand(workflow, seed)
        parent_shapes.append(parent_tree.stats())
        tasks, stats, rejected = expand_workflows(
            [workflow],
            seed=seed + verdict.round + 1,
            tasks_per_workflow=tasks_per_workflow,
            expander=deeper_expander(verdict.round) if deepen else parent_expander,
            prefer=not_in(parent_tree),
        )
        child_shapes.extend(w.tree for w in stats.per_workflow)
        expansion_rejections += rejected
        plain = [
            with_lineage(t, verdict, DEEPEN if deepen else None)
            for t in focus_on_failures(tasks, verdict)
        ]
        variants: dict[str, Task] = {}
        if LOOKUP in operators:
            for task in plain:
                result = lookup_task(workflow, task, seed)
                if result.task is None:
                    not_applicable[result.reason] += 1
                else:
                    variants[task.id] = result.task
        new_tasks += mix_variants(plain, variants, tasks_per_workflow, keep_plain=deepen)
    report, rejections = gate(new_tasks, expansion_rejections)
    band_counts = {"kept": len(report.kept), "too_easy": 0, "too_hard": 0}
    kept = report.kept
    evolved_rate = None
    rate_by_op: dict[str, float] = {}
    evolved_by_kind: dict[str, float] = {}
    if report.kept:
        probe = out / BAND_TRACES
        probe.unlink(missing_ok=True)
        rates = pass_rates(report.kept, policy, samples, config or RunnerConfig(), probe)
        evolved_rate = round(sum(rates.values()) / len(rates), 4)
        rate_by_op = rate_by_operator(report.kept, rates)
        evolved_by_kind = rate_by_kind(report.kept, rates)
        if use_band:
            keep_ids, band_counts = learnable_band(rates)
            kept = [t for t in report.kept if t.id in keep_ids]
    evaluated_episodes = [t for t in trajectories if t.task_id in evaluated]
    parent_rate = sum(t.passed for t in evaluated_episodes) / max(1, len(evaluated_episodes))
    manifest = EvolveManifest(
        report=str(report_dir),
        policy=getattr(policy, "name", "policy"),
        report_policy=str(summary.get("policy", "")),
        round=max((v.round for v in evolvable), default=-1) + 1,
        trees=verdicts,
        skipped_sources=skipped,
        generated=len(new_tasks),
        validated=len(report.kept),
        band=band_counts,
        tasks=len(kept),
        tasks_by_kind=dict(Counter(t.branch_kind for t in kept)),
        operators=list(operators),
        tasks_by_operator=dict(Counter(t.lineage.operator or "none" for t in kept)),
        lookup_not_applicable=dict(not_applicable),
        rejections_by_reason=counts_by_reason(rejections),
        parent_tree_shape=_shape(parent_shapes),
        evolved_tree_shape=_shape(child_shapes),
        parent_pass_rate=round(parent_rate, 4),
        evolved_pass_rate=evolved_rate,
        evolved_pass_rate_by_operator=rate_by_op,
        parent_pass_rate_by_kind=mean_by((t.branch_kind, t.passed) for t in evaluated_episodes),
        evolved_pass_rate_by_kind=evolved_by_kind,
    )
    write_stage_output(out, kept, rejections, manifest)
    return manifest


def _shape(trees: Sequence[Any]) -> dict[str, float]:
    if not trees:
        return {"depth": 0.0, "branching_factor": 0.0, "leaves": 0.0}
    n = len(trees)
    return {
        "depth": round(sum(t.depth for t in trees) / n, 3),
        "branching_factor": round(sum(t.branching_factor for t in trees) / n, 3),
        "leaves": round(sum(t.leaves for t in trees) / n, 3),
    }
