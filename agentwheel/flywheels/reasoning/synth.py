"""The seed stage: `synth_reasoning(seeds, out_dir)`.

Load seeds, check every answer (procedural ones by regenerating the item and asking the
generator's checker, stated ones by math-verify parsing), drop duplicates, and write
`problems.jsonl`, `rejections.jsonl` and `manifest.json`. Each checked seed is journaled
as it finishes (`checked.jsonl`), so a rerun skips it.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentwheel.core.rejection import Rejection, count_reasons
from agentwheel.core.run_layout import MANIFEST_FILE, PROBLEMS_FILE, REJECTIONS_FILE
from agentwheel.flywheels.reasoning.filters import Deduper
from agentwheel.flywheels.reasoning.generators import exact_check
from agentwheel.flywheels.reasoning.journal import Journal
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.progress import NullProgress, StageProgress
from agentwheel.flywheels.reasoning.seeds import load_seeds, write_problems
from agentwheel.flywheels.reasoning.stage_io import (
    StageConfig,
    claim_out_dir,
    package_versions,
    write_json,
    write_rejections,
)
from agentwheel.flywheels.reasoning.verify import is_checkable


class SynthConfig(StageConfig):
    seed: int = 0
    """Seed for the generators of a seed plan (the plan's own seed when None)."""
    limit: int | None = Field(default=None, ge=1)
    """Keep only the first N loaded seeds."""
    near_duplicate_threshold: float = Field(default=0.85, gt=0.0, le=1.0)
    check_timeout_s: int = Field(default=5, ge=1)


class SeedCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    problem: Problem
    rejection: Rejection | None = None


def _seed_check(problem: Problem, timeout_s: int) -> Rejection | None:
    if problem.generator is not None:
        why = exact_check(problem)
        if why is None:
            return None
        return Rejection(stage="seed_check", item=problem.id, reason="not exact", detail=why)
    if not is_checkable(problem.answer, timeout_s):
        return Rejection(
            stage="seed_check",
            item=problem.id,
            reason="answer not checkable",
            detail=f"math-verify cannot parse {problem.answer!r}",
        )
    return None


def synth_reasoning(
    seeds: str | Path,
    out_dir: Path,
    config: SynthConfig | None = None,
    progress: StageProgress | None = None,
) -> dict[str, Any]:
    """Seeds → checked, deduplicated `out_dir/problems.jsonl` (+ rejections, manifest).

    Raises FileNotFoundError / ValueError for a seeds spec that names nothing usable;
    bad records are counted as load rejections instead."""
    config = config or SynthConfig()
    progress = progress or NullProgress()
    started = time.monotonic()
    loaded = load_seeds(seeds, config.seed)
    run = {
        "stage": "synth_reasoning",
        "seeds": str(seeds),
        "config": config.model_dump(mode="json"),
    }
    claim_out_dir(out_dir, run)
    problems = loaded.problems[: config.limit] if config.limit else loaded.problems
    rejections = [
        Rejection(
            stage="load", item=f"{e.file}:{e.line}", reason=e.field or "record", detail=e.message
        )
        for e in loaded.errors
    ]
    journal = Journal(out_dir / "checked.jsonl", SeedCheck, key=lambda r: r.id)
    seen_ids: set[str] = set()
    unique: list[Problem] = []
    for problem in problems:
        if problem.id in seen_ids:
            rejections.append(
                Rejection(
                    stage="duplicate", item=problem.id, reason="duplicate id", detail=problem.source
                )
            )
        else:
            seen_ids.add(problem.id)
            unique.append(problem)
    progress.start("check seeds", len(unique), sum(p.id in journal for p in unique))
    for problem in unique:
        if problem.id in journal:
            continue
        rejection = _seed_check(problem, config.check_timeout_s)
        journal.append([SeedCheck(id=problem.id, problem=problem, rejection=rejection)])
        progress.advance("check seeds")
    deduper = Deduper(config.near_duplicate_threshold)
    kept: list[Problem] = []
    for problem in unique:
        check = journal.records[problem.id]
        if check.rejection is not None:
            rejections.append(check.rejection)
            continue
        duplicate = deduper.check(problem)
        if duplicate is not None:
            rejections.append(duplicate)
        else:
            kept.append(problem)
    write_problems(kept, out_dir / PROBLEMS_FILE)
    write_rejections(rejections, out_dir / REJECTIONS_FILE)
    manifest = {
        **run,
        "versions": package_versions(),
        "sources": loaded.sources,
        "counts": {
            "loaded": len(loaded.problems),
            "load_errors": len(loaded.errors),
            "checked": len(unique),
            "kept": len(kept),
            "kept_procedural": sum(p.procedural for p in kept),
            "kept_by_source": dict(
                Counter(p.generator.name if p.generator else p.source for p in kept)
            ),
        },
        "rejections": count_reasons(rejections),
        "resumed_items": journal.resumed,
        "seconds": round(time.monotonic() - started, 2),
    }
    write_json(out_dir / MANIFEST_FILE, manifest)
    return manifest
