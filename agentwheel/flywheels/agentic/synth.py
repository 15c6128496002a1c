"""The agentic synthesis stage: workflows → trees → branches → validated tasks on disk.

Output directory:
- `tasks.jsonl`: the tasks that passed the validation gate;
- `rejections.jsonl`: every rejection (loading, expansion and validation), one
  `agentwheel.core.rejection.Rejection` a line;
- `manifest.json`: counts by domain, branch kind and `stage:reason` of the rejections, and
  tree statistics per workflow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentwheel.core.atomic import write_lines_atomic, write_text_atomic
from agentwheel.core.dataset import write_tasks
from agentwheel.core.rejection import Rejection, count_reasons
from agentwheel.core.run_layout import MANIFEST_FILE, REJECTIONS_FILE, TASKS_FILE
from agentwheel.core.task import Task
from agentwheel.flywheels.agentic.expand import ExpansionStats, expand_workflows
from agentwheel.flywheels.agentic.procedural import ProceduralExpander
from agentwheel.flywheels.agentic.validate import ValidationReport, validate_tasks
from agentwheel.flywheels.agentic.workflow import Workflow
from agentwheel.flywheels.agentic.world_invariants import INVARIANTS_BROKEN


class SynthManifest(BaseModel):
    stage: str = "synth_agentic"
    expander: str
    seed: int
    round: int = 0
    tasks: int
    tasks_by_domain: dict[str, int]
    tasks_by_kind: dict[str, int]
    rejections_by_reason: dict[str, int]
    mean_tree_depth: float
    mean_branching_factor: float
    seconds: float
    per_workflow: list[dict[str, Any]] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    # The cross-check of worlds against the workflows' invariants: worlds of written tasks
    # checked, of them violating (0 by construction), and candidate worlds rejected for one.
    world_invariants: dict[str, int] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)


def mean_tree_shape(stats: ExpansionStats) -> tuple[float, float]:
    trees = [w.tree for w in stats.per_workflow]
    if not trees:
        return 0.0, 0.0
    depth = sum(t.depth for t in trees) / len(trees)
    branching = sum(t.branching_factor for t in trees) / len(trees)
    return round(depth, 3), round(branching, 3)


def write_stage_output(
    out: Path,
    tasks: Sequence[Task],
    rejections: Sequence[Rejection],
    manifest: BaseModel,
) -> None:
    """Tasks, rejections and the manifest, each written atomically; the manifest last. A
    write that fails (a full disk) removes the files written before it, so `out` never
    holds tasks without the manifest that describes them."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        write_tasks(tasks, out / TASKS_FILE)
        write_lines_atomic(out / REJECTIONS_FILE, (r.model_dump_json() for r in rejections))
        write_text_atomic(out / MANIFEST_FILE, manifest.model_dump_json(indent=2))
    except OSError:
        for name in (TASKS_FILE, REJECTIONS_FILE, MANIFEST_FILE):
            (out / name).unlink(missing_ok=True)
        raise


def gate(
    tasks: Sequence[Task], expansion_rejections: Sequence[Rejection]
) -> tuple[ValidationReport, list[Rejection]]:
    """Run the validation gate; return its report and every rejection, expansion's first."""
    report = validate_tasks(tasks)
    return report, [*expansion_rejections, *report.rejected]


def counts_by_reason(rejections: Sequence[Rejection]) -> dict[str, int]:
    """`stage:reason` → count, the flat form the agentic manifests record."""
    return {
        f"{stage}:{reason}": n
        for stage, reasons in count_reasons(rejections).items()
        for reason, n in reasons.items()
    }


def synth_agentic(
    out: Path,
    workflows: Sequence[Workflow | str | Path] | str | Path | None = None,
    seed: int = 0,
    tasks_per_workflow: int = 40,
    extra_conditions: int = 0,
    push_strategies: int = 2,
) -> SynthManifest:
    """Expand workflows procedurally, gate the tasks, and write the stage output."""
    expander = ProceduralExpander(
        extra_conditions=extra_conditions, push_strategies=push_strategies
    )
    tasks, stats, expansion_rejections = expand_workflows(
        workflows, seed=seed, tasks_per_workflow=tasks_per_workflow, expander=expander
    )
    report, rejections = gate(tasks, expansion_rejections)
    depth, branching = mean_tree_shape(stats)
    manifest = SynthManifest(
        expander="procedural",
        seed=seed,
        tasks=len(report.kept),
        tasks_by_domain=dict(Counter(t.domain for t in report.kept)),
        tasks_by_kind=dict(Counter(t.branch_kind for t in report.kept)),
        rejections_by_reason=counts_by_reason(rejections),
        mean_tree_depth=depth,
        mean_branching_factor=branching,
        seconds=stats.seconds,
        per_workflow=[w.model_dump(mode="json") for w in stats.per_workflow],
        warnings=[f"{w.workflow}: {text}" for w in stats.per_workflow for text in w.warnings],
        world_invariants={
            "worlds_checked": sum(w.worlds_checked for w in stats.per_workflow),
            "violations": sum(w.world_violations for w in stats.per_workflow),
            "worlds_rejected": sum(INVARIANTS_BROKEN in r.detail for r in rejections),
        },
    )
    write_stage_output(out, report.kept, rejections, manifest)
    return manifest
