"""The industrial synthesis stage: draft search or analysis questions, gate them, write them.

Output directory (the agentic stage's layout, so `agentwheel eval --tasks <out>` reads it):
`tasks.jsonl` (validated tasks), `rejections.jsonl`, `manifest.json` (counts by template
and by rejection reason, seconds).

Harder variants (`evolve`): a question the policy failed becomes one that needs more hops
(search: lead's city → the year that office opened), or whose honest answer is "not in
the data", and is gated again.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from agentwheel.core.industrial import parse_generated_spec
from agentwheel.core.task import Lineage, Task
from agentwheel.envs.knowledge_base import DEFAULT_DOCS, KnowledgeBase, generate_knowledge_base
from agentwheel.envs.tables import load_tables
from agentwheel.flywheels.agentic.synth import counts_by_reason, write_stage_output
from agentwheel.flywheels.industrial.analysis_tasks import TEMPLATES as ANALYSIS_TEMPLATES
from agentwheel.flywheels.industrial.analysis_tasks import draft_analysis_tasks
from agentwheel.flywheels.industrial.gate import gate_industrial
from agentwheel.flywheels.industrial.search_tasks import (
    BUILDERS,
    HARDER,
    collection_spec,
    draft_search_tasks,
    search_task,
)
from agentwheel.flywheels.industrial.search_tasks import TEMPLATES as SEARCH_TEMPLATES

IndustrialKind = Literal["search", "analysis"]
OVERDRAFT = 1.25  # drafts per wanted task: the gate rejects a few (about 1 in 30 here)


class IndustrialManifest(BaseModel):
    stage: str
    kind: IndustrialKind
    seed: int
    world: str
    tasks: int
    drafted: int
    tasks_by_template: dict[str, int]
    rejections_by_reason: dict[str, int]
    seconds: float


def synth_industrial(
    out: Path,
    kind: IndustrialKind,
    count: int,
    seed: int = 0,
    world_seed: int = 0,
    docs: int = DEFAULT_DOCS,
    templates: tuple[str, ...] | None = None,
) -> IndustrialManifest:
    """Draft about `count` × 1.25 questions (cycling through `templates`, by default all
    of the kind's), keep the first `count` the gate passes."""
    start = time.perf_counter()
    wanted = max(count, int(count * OVERDRAFT))
    if kind == "search":
        world = collection_spec(world_seed, docs)
        kb = generate_knowledge_base(world_seed, docs)
        drafts = draft_search_tasks(kb, world, wanted, seed, templates or SEARCH_TEMPLATES)
    else:
        world = "shop" if world_seed == 0 else f"shop?seed={world_seed}"
        tables = load_tables(world)
        drafts = draft_analysis_tasks(tables, world, wanted, seed, templates or ANALYSIS_TEMPLATES)
    report = gate_industrial(drafts)
    kept = report.kept[:count]
    manifest = IndustrialManifest(
        stage=f"synth_{kind}",
        kind=kind,
        seed=seed,
        world=world,
        tasks=len(kept),
        drafted=len(drafts),
        tasks_by_template=dict(Counter(t.lineage.branch for t in kept)),
        rejections_by_reason=counts_by_reason(report.rejected),
        seconds=round(time.perf_counter() - start, 2),
    )
    write_stage_output(out, kept, report.rejected, manifest)
    return manifest


@functools.lru_cache(maxsize=2)
def _knowledge_base(seed: int, docs: int) -> KnowledgeBase:
    return generate_knowledge_base(seed, docs)


def harder_search_variant(task: Task, round_: int) -> Task | None:
    """The search task one step harder (more hops, or an honest 'not in the data'), on
    the same project and collection; None when there is no harder template."""
    assert task.search is not None
    harder = HARDER.get(task.lineage.branch)
    options = parse_generated_spec(task.search.collection, "kb")
    if harder is None or options is None:
        return None
    kb = _knowledge_base(options.get("seed", 0), options.get("docs", DEFAULT_DOCS))
    project_id = task.evaluation.answer.evidence_docs[0] if task.evaluation.answer else ""
    project = kb.projects.get(project_id)
    if project is None:
        return None
    question = BUILDERS[harder](kb, project, project)
    lineage = Lineage(
        source_workflow=task.lineage.source_workflow,
        branch=harder,
        round=round_,
        parent_id=task.id,
        operator=f"harder:{task.lineage.branch}->{harder}",
    )
    return search_task(question, task.search.collection, f"{task.id}-h{round_}", lineage)


def evolve_search(tasks: Sequence[Task], round_: int = 1) -> tuple[list[Task], dict[str, int]]:
    """Harder variants of failed search tasks, gated; and the gate's rejection counts."""
    variants = [v for v in (harder_search_variant(t, round_) for t in tasks) if v is not None]
    report = gate_industrial(variants)
    return report.kept, counts_by_reason(report.rejected)
