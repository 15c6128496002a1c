"""Command line for the industrial tasks (mounted by agentwheel/cli/app.py as
`agentwheel synth search|analysis` and `agentwheel evolve search`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agentwheel.cli.errors import fail, in_range, require_dir
from agentwheel.cli.tables import counts_table
from agentwheel.cli.task_input import read_task_set
from agentwheel.core.run_layout import TASKS_FILE
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


def evolve_search(
    tasks: Annotated[str, typer.Option(help="The search tasks that were evaluated.")],
    run: Annotated[Path, typer.Option(help="An eval run directory (its traces.jsonl).")],
    out: Out,
    round_: Annotated[int, typer.Option("--round", callback=in_range(1), help="Round number.")] = 1,
) -> None:
    """Make the search tasks a policy failed harder (more hops, or 'not in the data')."""
    from agentwheel.core.dataset import write_tasks
    from agentwheel.eval.evaluate import TRACES, latest_results, read_traces
    from agentwheel.flywheels.industrial.synth import evolve_search as evolve

    require_dir(out)
    if not (run / TRACES).is_file():
        raise fail(f"no {TRACES} in {run}: pass the --out of an `agentwheel eval` run")
    failed = {t.task_id for t in latest_results(read_traces(run / TRACES).done) if not t.passed}
    chosen = [t for t in read_task_set(tasks, "skipped").tasks if t.id in failed and t.search]
    if not chosen:
        raise fail(f"no failed search tasks of {tasks!r} in {run}: nothing to make harder")
    with console.status(f"making {len(chosen)} failed tasks harder"):
        kept, rejected = evolve(chosen, round_)
    out.mkdir(parents=True, exist_ok=True)
    write_tasks(kept, out / TASKS_FILE)
    console.print(f"{len(kept)} harder tasks from {len(chosen)} failed ones → {out / TASKS_FILE}")
    if rejected:
        Console().print(counts_table("rejected by the gate", rejected))


def register(synth_app: typer.Typer, evolve_app: typer.Typer) -> None:
    synth_app.command("search")(synth_search)
    synth_app.command("analysis")(synth_analysis)
    evolve_app.command("search")(evolve_search)
