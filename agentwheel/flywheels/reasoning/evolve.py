"""One round of the reasoning flywheel: `evolve_reasoning(report_dir, policy, teacher, out_dir)`.

1. the policy attempts every problem of `report_dir/problems.jsonl` n times;
2. each problem it does not always solve is evolved: procedurally (offline, exact
   answers) and, with a teacher, by the LLM operators;
3. children are verified: procedural ones by the generator's checker, LLM-made ones by
   multi-model consistency; duplicates of anything in the pool are dropped;
4. the policy attempts every child n times; children (and, by default, parents) inside
   the learnable band are written to `problems.jsonl` for the next round.

Every finished item is journaled (append-only JSONL, fsynced: `parent_attempts.jsonl`,
`candidates.jsonl`, `verified.jsonl`, `child_attempts.jsonl`), so a killed run is
resumed by running it again with the same arguments. The final files
(`problems.jsonl`, `rejections.jsonl`, `manifest.json`) are rewritten atomically at the
end from the journals. `manifest.json` has the counts per stage, the rejection reasons
and the measured pass rates of parents and children.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentwheel.core.messages import SamplingParams
from agentwheel.core.rejection import Rejection, count_reasons
from agentwheel.core.run_layout import MANIFEST_FILE, PROBLEMS_FILE, REJECTIONS_FILE
from agentwheel.core.stats import mean_or_none
from agentwheel.flywheels.reasoning.attempts import AttemptRecord, collect_attempts
from agentwheel.flywheels.reasoning.consistency import ConsistencyResult, check_consistency
from agentwheel.flywheels.reasoning.filters import Band, Deduper
from agentwheel.flywheels.reasoning.generators import exact_check
from agentwheel.flywheels.reasoning.journal import Journal
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.procedural import ProceduralEvolver
from agentwheel.flywheels.reasoning.progress import NullProgress, StageProgress
from agentwheel.flywheels.reasoning.seeds import load_seed_file, write_problems
from agentwheel.flywheels.reasoning.stage_io import (
    StageConfig,
    claim_out_dir,
    package_versions,
    write_json,
    write_rejections,
)
from agentwheel.flywheels.reasoning.teacher import LLM_OPERATORS, TeacherEvolver
from agentwheel.llm.types import ChatModel
from agentwheel.settings.answer_format import AnswerFormat


class EvolveConfig(StageConfig):
    n: int = Field(default=4, ge=1)
    """Policy samples per problem (parents and children)."""
    round: int | None = Field(default=None, ge=1)
    """The round the children belong to (default: one more than the report's highest)."""
    policy_params: SamplingParams = SamplingParams(max_new_tokens=256, temperature=0.7, seed=0)
    answer_format: AnswerFormat = AnswerFormat()
    batch_size: int = Field(default=32, ge=1)
    """Requests per chat call."""
    evolve_below: float = Field(default=1.0, gt=0.0, le=1.0)
    """Parents whose pass rate is below this are evolved."""
    procedural_children: int = Field(default=2, ge=0)
    """Procedural children per evolved parent (0 turns the offline operators off)."""
    llm_operators: tuple[str, ...] = LLM_OPERATORS
    """LLM operators used when a teacher is given."""
    teacher_params: SamplingParams = SamplingParams(max_new_tokens=768, temperature=0.8, seed=0)
    teacher_retries: int = Field(default=2, ge=0)
    solver_params: SamplingParams = SamplingParams(max_new_tokens=1024, temperature=0.0, seed=0)
    min_agree: int | None = Field(default=None, ge=1)
    """Solvers that must agree on an LLM-made answer (default: a majority)."""
    band: Band = Band()
    keep_parents_in_band: bool = True
    near_duplicate_threshold: float = Field(default=0.85, gt=0.0, le=1.0)
    check_timeout_s: int = Field(default=5, ge=1)
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N problems of the report."""
    seed: int = 0


class CandidateRecord(BaseModel):
    """What one evolver made from one parent."""

    model_config = ConfigDict(extra="forbid")

    parent_id: str
    evolver: str
    children: list[Problem] = Field(default_factory=list)
    rejections: list[Rejection] = Field(default_factory=list)


class VerificationRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    problem_id: str
    kept: bool
    method: str
    rejection: Rejection | None = None
    consistency: ConsistencyResult | None = None


def _mean(values: Sequence[float]) -> float | None:
    m = mean_or_none(values)
    return None if m is None else round(m, 4)


def _attempt(
    problems: Sequence[Problem],
    journal: Journal[AttemptRecord],
    policy: ChatModel,
    config: EvolveConfig,
    phase: str,
    progress: StageProgress,
) -> None:
    todo = [p for p in problems if p.id not in journal]
    progress.start(phase, len(problems), len(problems) - len(todo))

    def done(record: AttemptRecord) -> None:
        journal.append([record])
        progress.advance(phase)

    collect_attempts(
        todo,
        policy,
        config.n,
        config.policy_params,
        config.answer_format,
        config.batch_size,
        config.check_timeout_s,
        on_record=done,
    )


def _evolve(
    to_evolve: Sequence[AttemptRecord],
    pool: Sequence[Problem],
    journal: Journal[CandidateRecord],
    teacher: ChatModel | None,
    round_: int,
    config: EvolveConfig,
    progress: StageProgress,
) -> None:
    def record(parent_id: str, evolver: str, outcomes: Sequence[Problem | Rejection]) -> None:
        journal.append(
            [
                CandidateRecord(
                    parent_id=parent_id,
                    evolver=evolver,
                    children=[o for o in outcomes if isinstance(o, Problem)],
                    rejections=[o for o in outcomes if isinstance(o, Rejection)],
                )
            ]
        )

    evolvers = int(config.procedural_children > 0) + int(teacher is not None)
    total = len(to_evolve) * evolvers
    done = sum(
        f"{r.problem.id}|{e}" in journal for r in to_evolve for e in ("procedural", "teacher")
    )
    progress.start("evolve", total, done)
    if config.procedural_children > 0:
        procedural = ProceduralEvolver(config.procedural_children, config.seed)
        for r in to_evolve:
            if f"{r.problem.id}|procedural" not in journal:
                record(r.problem.id, "procedural", procedural.evolve(r, round_))
                progress.advance("evolve")
    if teacher is None:
        return
    llm = TeacherEvolver(
        teacher,
        config.llm_operators,
        config.teacher_params,
        config.teacher_retries,
        config.seed,
        config.batch_size,
        config.check_timeout_s,
    )
    todo = [r for r in to_evolve if f"{r.problem.id}|teacher" not in journal]
    per_call = max(1, config.batch_size // max(1, len(config.llm_operators)))
    for start in range(0, len(todo), per_call):
        chunk = todo[start : start + per_call]
        outcomes = llm.evolve_all(chunk, round_, pool)
        width = len(config.llm_operators)
        for i, r in enumerate(chunk):
            record(r.problem.id, "teacher", outcomes[i * width : (i + 1) * width])
            progress.advance("evolve")


def _verify(
    candidates: Sequence[Problem],
    parents: dict[str, Problem],
    journal: Journal[VerificationRecord],
    solvers: Sequence[ChatModel],
    min_agree: int,
    config: EvolveConfig,
    progress: StageProgress,
) -> None:
    progress.start("verify", len(candidates), sum(c.id in journal for c in candidates))
    llm_made: list[Problem] = []
    for child in candidates:
        if child.id in journal:
            continue
        if child.generator is not None:
            why = exact_check(child)
            rejection = (
                None
                if why is None
                else Rejection(
                    stage="exact_check",
                    item=child.id,
                    reason="not exact",
                    detail=why,
                    context=child.lineage.rejection_context(),
                )
            )
            journal.append(
                [
                    VerificationRecord(
                        problem_id=child.id,
                        kept=why is None,
                        method="generator",
                        rejection=rejection,
                    )
                ]
            )
            progress.advance("verify")
        elif child.source.startswith("teacher:"):
            llm_made.append(child)
        else:
            # a stated parent's distractor child: same question core, the parent's answer
            parent = parents.get(child.lineage.parent_id or "")
            same = parent is not None and parent.answer == child.answer
            journal.append(
                [
                    VerificationRecord(
                        problem_id=child.id,
                        kept=same,
                        method="inherited",
                        rejection=None
                        if same
                        else Rejection(
                            stage="exact_check", item=child.id, reason="answer not inherited"
                        ),
                    )
                ]
            )
            progress.advance("verify")
    if not llm_made:
        return

    by_id = {c.id: c for c in llm_made}

    def voted(result: ConsistencyResult) -> None:
        problem = by_id[result.problem_id]
        journal.append(
            [
                VerificationRecord(
                    problem_id=result.problem_id,
                    kept=result.kept,
                    method="consistency",
                    rejection=result.rejection(problem),
                    consistency=result,
                )
            ]
        )
        progress.advance("verify")

    check_consistency(
        llm_made,
        solvers,
        min_agree,
        config.solver_params,
        config.answer_format,
        config.check_timeout_s,
        config.batch_size,
        on_result=voted,
    )


def _verified_child(child: Problem, record: VerificationRecord) -> Problem:
    status = {"generator": "exact", "inherited": "inherited"}.get(record.method)
    if record.consistency is not None:
        c = record.consistency
        status = f"consensus {c.agreeing}/{len(c.votes)}"
    return child.model_copy(
        update={"meta": {**child.meta, "answer_status": status or record.method}}
    )


def _pass_rate_report(
    parents: dict[str, AttemptRecord], children: Sequence[AttemptRecord]
) -> dict[str, Any]:
    pairs = [(parents[c.problem.lineage.parent_id or ""], c) for c in children]
    by_op: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for parent, child in pairs:
        by_op[child.problem.lineage.operator].append((parent.pass_rate, child.pass_rate))
    evolved_parent_ids = {p.problem.id for p, _ in pairs}
    return {
        "parents_all": _mean([r.pass_rate for r in parents.values()]),
        "parents_evolved": _mean([parents[i].pass_rate for i in evolved_parent_ids]),
        "children": _mean([c.pass_rate for c in children]),
        "pairs": len(pairs),
        "pairs_child_lower": sum(c.pass_rate < p.pass_rate for p, c in pairs),
        "pairs_child_equal": sum(c.pass_rate == p.pass_rate for p, c in pairs),
        "pairs_child_higher": sum(c.pass_rate > p.pass_rate for p, c in pairs),
        "by_operator": {
            op: {
                "children": len(v),
                "parent_mean": _mean([p for p, _ in v]),
                "child_mean": _mean([c for _, c in v]),
            }
            for op, v in sorted(by_op.items())
        },
    }


def evolve_reasoning(
    report_dir: Path,
    policy: ChatModel,
    teacher: ChatModel | None,
    out_dir: Path,
    solvers: Sequence[ChatModel] = (),
    config: EvolveConfig | None = None,
    progress: StageProgress | None = None,
) -> dict[str, Any]:
    """One round of the reasoning flywheel (see the module docstring); returns the manifest.

    Without a teacher only the procedural operators run (offline). With one, LLM-made
    children are checked by `solvers` (default: the teacher alone); `config.min_agree`
    of them must agree (default: a majority)."""
    config = config or EvolveConfig()
    progress = progress or NullProgress()
    started = time.monotonic()
    source = (
        load_seed_file(report_dir / PROBLEMS_FILE)
        if report_dir.is_dir()
        else load_seed_file(report_dir)
    )
    if source.errors:
        raise ValueError(
            f"{len(source.errors)} bad problems in the report, first: {source.errors[0]}"
        )
    problems = source.problems[: config.limit] if config.limit else source.problems
    if not problems:
        raise ValueError(f"no problems in {report_dir}")
    solvers = list(solvers) or ([teacher] if teacher is not None else [])
    min_agree = config.min_agree or (len(solvers) // 2 + 1)
    if teacher is not None and min_agree > len(solvers):
        raise ValueError(f"min_agree {min_agree} exceeds the {len(solvers)} solver models")
    round_ = config.round or 1 + max(p.lineage.round for p in problems)
    run = {
        "stage": "evolve_reasoning",
        "report": str(report_dir),
        "policy": policy.name,
        "teacher": teacher.name if teacher is not None else None,
        "solvers": [s.name for s in solvers] if teacher is not None else [],
        "min_agree": min_agree if teacher is not None else None,
        "round": round_,
        "config": config.model_dump(mode="json"),
    }
    resumed = claim_out_dir(out_dir, run)
    by_id = {p.id: p for p in problems}

    parent_log = Journal(
        out_dir / "parent_attempts.jsonl", AttemptRecord, key=lambda r: r.problem.id
    )
    _attempt(problems, parent_log, policy, config, "attempt parents", progress)
    parent_records = {p.id: parent_log.records[p.id] for p in problems}
    to_evolve = [r for r in parent_records.values() if r.pass_rate < config.evolve_below]

    candidate_log = Journal(
        out_dir / "candidates.jsonl", CandidateRecord, key=lambda r: f"{r.parent_id}|{r.evolver}"
    )
    _evolve(to_evolve, problems, candidate_log, teacher, round_, config, progress)
    rejections: list[Rejection] = []
    candidates: list[Problem] = []
    for r in to_evolve:
        for evolver in ("procedural", "teacher"):
            made = candidate_log.get(f"{r.problem.id}|{evolver}")
            if made is not None:
                candidates.extend(made.children)
                rejections.extend(made.rejections)

    verify_log = Journal(out_dir / "verified.jsonl", VerificationRecord, key=lambda r: r.problem_id)
    _verify(candidates, by_id, verify_log, solvers, min_agree, config, progress)
    deduper = Deduper(config.near_duplicate_threshold)
    for p in problems:
        deduper.add(p)
    verified: list[Problem] = []
    for child in candidates:
        check = verify_log.records[child.id]
        if not check.kept:
            if check.rejection is not None:
                rejections.append(check.rejection)
            continue
        duplicate = deduper.check(child)
        if duplicate is not None:
            rejections.append(duplicate)
        else:
            verified.append(_verified_child(child, check))

    child_log = Journal(out_dir / "child_attempts.jsonl", AttemptRecord, key=lambda r: r.problem.id)
    _attempt(verified, child_log, policy, config, "attempt children", progress)
    child_records = [child_log.records[c.id] for c in verified]

    kept: list[Problem] = []
    parents_in_band = [r for r in parent_records.values() if config.band.contains(r.pass_rate)]
    if config.keep_parents_in_band:
        kept.extend(r.problem for r in parents_in_band)
    for record, child in zip(child_records, verified, strict=True):
        outside = config.band.rejection(child, record.pass_rate)
        if outside is None:
            kept.append(child)
        else:
            rejections.append(outside)
    procedural_children = [c for c in candidates if c.generator is not None]
    procedural_kept = [p for p in kept if p.generator is not None]
    exact_kept = sum(exact_check(p) is None for p in procedural_kept)
    write_problems(kept, out_dir / PROBLEMS_FILE)
    write_rejections(rejections, out_dir / REJECTIONS_FILE)
    children_kept = len(kept) - (len(parents_in_band) if config.keep_parents_in_band else 0)
    manifest = {
        **run,
        "versions": package_versions(),
        "counts": {
            "parents": len(problems),
            "parents_evolved": len(to_evolve),
            "parents_in_band": len(parents_in_band),
            "parents_never_solved": sum(r.pass_rate == 0.0 for r in parent_records.values()),
            "parents_always_solved": sum(r.pass_rate == 1.0 for r in parent_records.values()),
            "candidates": len(candidates),
            "candidates_by_operator": dict(Counter(c.lineage.operator for c in candidates)),
            "verified": len(verified),
            "children_in_band": children_kept,
            "kept": len(kept),
            "failed_policy_requests": sum(
                r.failed_requests for r in [*parent_records.values(), *child_records]
            ),
        },
        "pass_rates": _pass_rate_report(parent_records, child_records),
        "exactness": {
            "procedural_children": len(procedural_children),
            "procedural_children_exact": sum(
                verify_log.records[c.id].kept for c in procedural_children
            ),
            "procedural_kept": len(procedural_kept),
            "procedural_kept_exact": exact_kept,
        },
        "rejections": count_reasons(rejections),
        "resumed": resumed,
        "resumed_items": {
            "parent_attempts": parent_log.resumed,
            "candidates": candidate_log.resumed,
            "verified": verify_log.resumed,
            "child_attempts": child_log.resumed,
        },
        "seconds": round(time.monotonic() - started, 2),
    }
    write_json(out_dir / MANIFEST_FILE, manifest)
    return manifest
