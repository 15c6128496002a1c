"""Command line for the industrial tasks (mounted by agentwheel/cli/app.py as
`agentwheel synth search|analysis` and `agentwheel evolve search|analysis`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from agentwheel.cli.errors import fail, in_range, require_dir
from agentwheel.cli.tables import counts_table
from agentwheel.cli.task_input import read_task_set
from agentwheel.core.run_layout import TASKS_FILE
from agentwheel.core.task import Task
from agentwheel.envs.knowledge_base import DEFAULT_DOCS

console = Console(stderr=True)


def _synth(kind: str, out: Path, count: int, seed: int, world_seed: int, docs: int) -> None:
    from agentwheel.flywheels.industrial.synth import synth_industrial

    require_dir(out)
    try:
        with console.status(f"drafting and validating {kind} tasks"):
            manifest = synth_industrial(out, kind, count, seed, world_seed, docs)  # type: ignore[arg-type]
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    Console().print(counts_table(f"{kind} tasks by template", manifest.tasks_by_template))
    if manifest.rejections_by_reason:
        Console().print(counts_table("rejected by the gate", manifest.rejections_by_reason))
    console.print(f"{manifest.tasks} validated {kind} tasks in {manifest.seconds:.1f} s → {out}")
    if manifest.tasks < count:
        raise fail(f"only {manifest.tasks} of {count} tasks passed the gate (see {out})")


Out = Annotated[
    Path, typer.Option(help="Output directory (tasks.jsonl, rejections.jsonl, manifest.json).")
]
Count = Annotated[int, typer.Option(callback=in_range(1), help="Validated tasks to write.")]
Seed = Annotated[int, typer.Option(callback=in_range(0), help="Seed for the questions.")]
WorldSeed = Annotated[
    int, typer.Option(callback=in_range(0), help="Seed of the generated collection / tables.")
]


def synth_search(
    out: Out,
    count: Count = 300,
    seed: Seed = 0,
    world_seed: WorldSeed = 0,
    docs: Annotated[
        int,
        typer.Option(callback=in_range(1000), help="Documents in the generated knowledge base."),
    ] = DEFAULT_DOCS,
) -> None:
    """Multi-hop search questions over the generated knowledge base, gated (oracle
    passes; answering blind or from the distractor draft fails)."""
    _synth("search", out, count, seed, world_seed, docs)


def synth_analysis(out: Out, count: Count = 300, seed: Seed = 0, world_seed: WorldSeed = 0) -> None:
    """Analysis questions with gold queries over the generated shop tables, gated
    (oracle passes; answering blind or from the distractor query fails)."""
    _synth("analysis", out, count, seed, world_seed, DEFAULT_DOCS)


Parents = Literal["failed", "passed", "all"]
ParentsOption = Annotated[
    Parents,
    typer.Option(
        help="Which evaluated tasks to make harder: failed (the flywheel's rule), passed, all."
    ),
]
Round = Annotated[int, typer.Option("--round", callback=in_range(1), help="Round number.")]
TasksOption = Annotated[str, typer.Option(help="The tasks that were evaluated.")]
RunOption = Annotated[Path, typer.Option(help="An eval run directory (its traces.jsonl).")]


def _parents(tasks: str, run: Path, which: Parents, kind: str) -> list[Task]:
    """The tasks of `kind` in `tasks` whose latest result in `run` is `which`."""
    from agentwheel.eval.evaluate import TRACES, latest_results, read_traces

    if not (run / TRACES).is_file():
        raise fail(f"no {TRACES} in {run}: pass the --out of an `agentwheel eval` run")
    results = {t.task_id: t.passed for t in latest_results(read_traces(run / TRACES).done)}
    wanted = {True, False} if which == "all" else {which == "passed"}
    chosen = [
        t
        for t in read_task_set(tasks, "skipped").tasks
        if t.world_kind == kind and t.id in results and results[t.id] in wanted
    ]
    if not chosen:
        raise fail(f"no {which} {kind} tasks of {tasks!r} in {run}: nothing to make harder")
    return chosen


def _write_harder(out: Path, kept: list[Task], parents: int, rejected: dict[str, int]) -> None:
    from agentwheel.core.dataset import write_tasks

    out.mkdir(parents=True, exist_ok=True)
    write_tasks(kept, out / TASKS_FILE)
    console.print(f"{len(kept)} harder tasks from {parents} → {out / TASKS_FILE}")
    if kept:
        operators = Counter(t.lineage.operator or "" for t in kept)
        Console().print(counts_table("kept by operator", dict(operators)))
    if rejected:
        Console().print(counts_table("rejected by the gate", rejected))


def evolve_search(
    tasks: TasksOption,
    run: RunOption,
    out: Out,
    round_: Round = 1,
    parents: ParentsOption = "failed",
) -> None:
    """Make the search tasks a policy failed (or passed) harder: more hops, or 'not in the data'."""
    from agentwheel.flywheels.industrial.synth import evolve_search as evolve

    require_dir(out)
    chosen = _parents(tasks, run, parents, "search")
    with console.status(f"making {len(chosen)} {parents} tasks harder"):
        kept, rejected = evolve(chosen, round_)
    _write_harder(out, kept, len(chosen), rejected)


def evolve_analysis(
    tasks: TasksOption,
    run: RunOption,
    out: Out,
    round_: Round = 1,
    parents: ParentsOption = "failed",
    operators: Annotated[
        str,
        typer.Option(
            help="Comma-separated operators, tried in turn: date_window, filter_hop, null_trap, "
            "not_in_data, clarify."
        ),
    ] = "date_window,filter_hop,null_trap,not_in_data,clarify",
) -> None:
    """Make the analysis tasks a policy failed (or passed) harder: a date window, a join
    hop, a NULL trap, a 'not in the data' restriction, or a year left to ask for; each
    variant kept only if the gate passes it."""
    from agentwheel.flywheels.industrial.analysis_evolve import OPERATORS
    from agentwheel.flywheels.industrial.analysis_evolve import evolve_analysis as evolve

    require_dir(out)
    names = [n.strip() for n in operators.split(",") if n.strip()]
    unknown = [n for n in names if n not in OPERATORS]
    if unknown or not names:
        raise fail(f"unknown operators {unknown}; choose among {', '.join(OPERATORS)}")
    chosen = _parents(tasks, run, parents, "analysis")
    with console.status(f"making {len(chosen)} {parents} tasks harder"):
        kept, rejected = evolve(chosen, round_, names)
    _write_harder(out, kept, len(chosen), rejected)


def register(synth_app: typer.Typer, evolve_app: typer.Typer) -> None:
    synth_app.command("search")(synth_search)
    synth_app.command("analysis")(synth_analysis)
    evolve_app.command("search")(evolve_search)
    evolve_app.command("analysis")(evolve_analysis)
