"""The `agentwheel` command line."""

from __future__ import annotations

import os
import sys

# Spinning OpenMP workers starve each other when cores are shared (measured here: 1 token/s
# instead of 15); passive waiting costs nothing when they are not. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from agentwheel.cli.errors import UserErrorGroup, fail, in_range, require_dir
from agentwheel.cli.tables import counts_table
from agentwheel.cli.task_input import read_task_set
from agentwheel.cli.workflows import (
    print_workflow_rejections,
    print_workflow_warnings,
    validate_workflows,
    workflow_app,
    workflows_source,
)
from agentwheel.core.jsonl import read_jsonl
from agentwheel.core.messages import SamplingParams
from agentwheel.core.rejection import Rejection
from agentwheel.core.run_layout import MANIFEST_FILE, REJECTIONS_FILE
from agentwheel.settings.runner import RunnerConfig

app = typer.Typer(
    help="Train small language models to be reliable tool-using agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=UserErrorGroup,
)
console = Console(stderr=True)


def version_string() -> str:
    from agentwheel import __version__

    return f"agentwheel {__version__}"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_string())
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """agentwheel: synthesize agentic tasks, evaluate and train small tool-using models."""


synth_app = typer.Typer(help="Synthesize training tasks.", no_args_is_help=True)
evolve_app = typer.Typer(help="Run one flywheel step from a report.", no_args_is_help=True)
app.add_typer(synth_app, name="synth")
app.add_typer(evolve_app, name="evolve")
app.add_typer(workflow_app, name="workflow")


@synth_app.command("agentic")
def synth_agentic_command(
    out: Annotated[
        Path, typer.Option(help="Output directory (tasks.jsonl, rejections.jsonl, manifest.json).")
    ],
    workflows: Annotated[
        str, typer.Option(help="'bundled', a workflow YAML file, or a directory of them.")
    ] = "bundled",
    expander: Annotated[
        Literal["procedural", "llm"],
        typer.Option(help="procedural (offline) | llm"),
    ] = "procedural",
    teacher: Annotated[
        str | None, typer.Option(help="Teacher model spec for --expander llm.")
    ] = None,
    tasks_per_workflow: Annotated[
        int, typer.Option(callback=in_range(1), help="Task budget per workflow.")
    ] = 40,
    extra_conditions: Annotated[
        int, typer.Option(callback=in_range(0), help="Extra preconditions per tree (depth).")
    ] = 0,
    seed: Annotated[
        int, typer.Option(callback=in_range(0), help="Seed for trees, data and phrasing.")
    ] = 0,
) -> None:
    """Expand workflows into behavior trees and validated, state-verifiable tasks."""
    from agentwheel.flywheels.agentic.synth import synth_agentic

    source = workflows_source(workflows)
    require_dir(out)
    if expander == "llm":
        if not teacher:
            raise typer.BadParameter("needs --teacher <model spec>", param_hint="--expander llm")
        run_llm_expander(source, teacher, out, seed)
        return
    with console.status("expanding workflows and validating tasks"):
        manifest = synth_agentic(
            out,
            source,
            seed=seed,
            tasks_per_workflow=tasks_per_workflow,
            extra_conditions=extra_conditions,
        )
    rejections, _ = read_jsonl(out / REJECTIONS_FILE, Rejection)
    print_workflow_rejections([r for r in rejections if r.stage == "load"])
    print_workflow_warnings(manifest.warnings)
    if manifest.tasks == 0:
        first = str(rejections[0]) if rejections else "nothing to expand"
        raise fail(
            f"no valid tasks from --workflows {workflows}: {' '.join(first.split())} "
            f"(every rejection: {out / REJECTIONS_FILE})"
        )
    shape = Table(title="behavior trees")
    for column in ("workflow", "domain", "depth", "leaves", "branching", "tasks"):
        shape.add_column(column)
    for w in manifest.per_workflow:
        tree = w["tree"]
        shape.add_row(
            w["workflow"],
            w["domain"],
            str(tree["depth"]),
            str(tree["leaves"]),
            f"{tree['branching_factor']:.2f}",
            str(w["tasks"]),
        )
    out_console = Console()
    out_console.print(shape)
    out_console.print(counts_table("tasks by branch kind", manifest.tasks_by_kind))
    out_console.print(counts_table("tasks by domain", manifest.tasks_by_domain))
    if manifest.rejections_by_reason:
        out_console.print(counts_table("rejections", manifest.rejections_by_reason))
    out_console.print(counts_table("world invariants", manifest.world_invariants))
    console.print(f"{manifest.tasks} validated tasks in {manifest.seconds:.1f} s → {out}")
    rejected = sum(r.stage == "load" for r in rejections)
    if rejected:
        raise fail(
            f"{rejected} workflow file(s) rejected (listed above; tasks of the others are "
            f"written); check them with `agentwheel validate --workflows {workflows}`"
        )


def run_llm_expander(source: str | None, teacher: str, out: Path, seed: int) -> None:
    from agentwheel.flywheels.agentic.llm_expander import LLMExpanderConfig, expand_with_llm
    from agentwheel.llm.openai_compat import ModelConfigError
    from agentwheel.specs import SpecError, load_chat_model

    try:
        model = load_chat_model(teacher)
    except SpecError as exc:
        raise fail(str(exc)) from None
    try:
        with console.status(f"expanding workflows with {teacher}"):
            manifest = expand_with_llm(source, model, out, LLMExpanderConfig(seed=seed))
    except ModelConfigError as exc:
        raise fail(f"{exc} (finished items are kept in {out}; rerun to resume)") from None
    rows: dict[str, Any] = {"tasks kept": manifest.tasks_kept, **manifest.rejections_by_reason}
    Console().print(counts_table(f"LLM expansion ({manifest.status})", rows))
    console.print(f"manifest: {out / MANIFEST_FILE}")
    rejections, _ = read_jsonl(out / REJECTIONS_FILE, Rejection)
    rejected = [r for r in rejections if r.stage == "load"]
    if rejected:
        print_workflow_rejections(rejected)
        raise fail(f"{len(rejected)} workflow file(s) rejected (listed above)")
    if manifest.tasks_kept == 0:
        # A teacher that is down or answers garbage rejects every item: not a success.
        first = str(rejections[-1]) if rejections else "nothing to expand"
        raise fail(
            f"no tasks kept from teacher {teacher}: {first} "
            f"(every rejection: {out / REJECTIONS_FILE}; rerun to retry)"
        )


@app.command("validate")
def validate_command(
    tasks: Annotated[
        str | None,
        typer.Argument(help="Task JSONL file or directory, or a bundled dataset name."),
    ] = None,
    backend: Annotated[
        Literal["auto", "mock", "sqlite"],
        typer.Option(help="auto | mock | sqlite"),
    ] = "auto",
    workflows: Annotated[
        str | None,
        typer.Option(
            help="Check workflow YAML instead (a file, a directory of them, or 'bundled'), "
            "without synthesizing."
        ),
    ] = None,
) -> None:
    """Check tasks (the oracle must pass, the hack policy must fail, arguments must be
    traceable), or with --workflows check workflow files."""
    from agentwheel.flywheels.agentic.validate import validate_tasks

    if workflows is not None:
        if tasks is not None:
            raise typer.BadParameter("pass tasks or --workflows, not both", param_hint="TASKS")
        validate_workflows(workflows)
        return
    if tasks is None:
        raise typer.BadParameter(
            "pass a task file or directory, or --workflows", param_hint="TASKS"
        )
    task_set = read_task_set(tasks, "unreadable")
    report = validate_tasks(task_set.tasks, backend=backend)
    for rejection in report.rejected:
        console.print(f"[red]rejected[/] {rejection.item}: {rejection.reason}: {rejection.detail}")
    counts = {**report.counts, "unreadable lines": len(task_set.errors)}
    Console().print(counts_table(f"validation of {tasks}", counts))
    if report.rejected or task_set.errors:
        raise typer.Exit(1)


@evolve_app.command("agentic")
def evolve_agentic_command(
    report: Annotated[
        Path, typer.Option(help="An eval run directory (summary.json, traces.jsonl).")
    ],
    out: Annotated[Path, typer.Option(help="Output directory for the evolved tasks.")],
    policy: Annotated[
        str, typer.Option(help="The current policy, for the learnable band.")
    ] = "hf:default",
    samples: Annotated[
        int,
        typer.Option(callback=in_range(1), help="Attempts per new task for the learnable band."),
    ] = 4,
    tasks_per_workflow: Annotated[
        int, typer.Option(callback=in_range(1), help="Task budget per evolved tree.")
    ] = 24,
    band: Annotated[bool, typer.Option(help="Keep only tasks the policy sometimes passes.")] = True,
    temperature: Annotated[
        float, typer.Option(callback=in_range(0), help="Sampling temperature of the attempts.")
    ] = 0.7,
    max_new_tokens: Annotated[
        int, typer.Option(callback=in_range(1), help="Token limit of one agent turn.")
    ] = 256,
    max_turns: Annotated[
        int, typer.Option(callback=in_range(1), help="Agent turns before an episode is cut.")
    ] = 16,
    batch_size: Annotated[
        int, typer.Option(callback=in_range(1), help="Episodes per batched model call.")
    ] = 32,
    dtype: Annotated[str, typer.Option(help="float32 | bfloat16 for hf: policies.")] = "float32",
    seed: Annotated[int, typer.Option(callback=in_range(0), help="Seed.")] = 0,
    workflows: Annotated[
        str,
        typer.Option(
            help="The workflows the report's tasks came from: 'bundled', a YAML file or a "
            "directory of them."
        ),
    ] = "bundled",
    operators: Annotated[
        str,
        typer.Option(
            help="Comma-separated evolve operators: deepen (one more rule and push-back), "
            "lookup (the user knows the record only by description)."
        ),
    ] = "deepen,lookup",
) -> None:
    """Grow deeper trees where the policy fails or saturates; keep the learnable band."""
    from agentwheel.eval.evaluate import UnreadableSummary, read_summary
    from agentwheel.flywheels.agentic.evolve import OPERATORS, evolve_agentic
    from agentwheel.specs import SpecError, load_policy

    chosen = [o.strip() for o in operators.split(",") if o.strip()]
    if not chosen or set(chosen) - set(OPERATORS):
        raise typer.BadParameter(
            f"list some of {', '.join(OPERATORS)}, got {operators!r}", param_hint="--operators"
        )
    try:
        read_summary(report)
    except UnreadableSummary as exc:
        raise fail(str(exc)) from None
    source = workflows_source(workflows)
    require_dir(out)
    try:
        agent = load_policy(
            policy,
            SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed),
            dtype=dtype,
        )
    except SpecError as exc:
        raise fail(str(exc)) from None
    runner = RunnerConfig(max_agent_turns=max_turns, batch_size=batch_size)
    with console.status("evolving trees, validating and measuring the learnable band"):
        manifest = evolve_agentic(
            report,
            agent,
            out,
            samples=samples,
            tasks_per_workflow=tasks_per_workflow,
            seed=seed,
            use_band=band,
            workflows=source,
            config=runner,
            operators=chosen,
        )
    rows = {
        "trees evolved": len(manifest.trees) - len(manifest.skipped_sources),
        "tasks generated": manifest.generated,
        "passed the gate": manifest.validated,
        **{f"band: {k}": v for k, v in manifest.band.items()},
        **{f"operator: {k}": v for k, v in manifest.tasks_by_operator.items()},
        "parent pass rate": manifest.parent_pass_rate,
        "evolved pass rate": manifest.evolved_pass_rate,
        **{f"evolved pass rate: {k}": v for k, v in manifest.evolved_pass_rate_by_operator.items()},
        **{
            f"pass rate, {kind} (parent → evolved)": f"{rate} → {manifest.evolved_pass_rate_by_kind.get(kind, '–')}"
            for kind, rate in manifest.parent_pass_rate_by_kind.items()
        },
        "tree depth (parent → evolved)": f"{manifest.parent_tree_shape['depth']} → {manifest.evolved_tree_shape['depth']}",
        "leaves (parent → evolved)": f"{manifest.parent_tree_shape['leaves']} → {manifest.evolved_tree_shape['leaves']}",
    }
    Console().print(counts_table(f"evolve round {manifest.round}", rows))
    if manifest.skipped_sources:
        console.print(
            f"no workflow for: {', '.join(manifest.skipped_sources)} (not evolved; pass the "
            "workflows the tasks came from with --workflows)"
        )
    if manifest.report_policy and manifest.report_policy != manifest.policy:
        console.print(
            f"note: the parents were evaluated with {manifest.report_policy}, the evolved "
            f"tasks with {manifest.policy}: their pass rates compare two policies"
        )
    if manifest.tasks == 0:
        raise fail(
            f"no tasks kept: {manifest.generated} generated, {manifest.validated} passed the "
            f"gate, none kept by the learnable band (every count: {out / MANIFEST_FILE})"
        )
    console.print(f"{manifest.tasks} tasks → {out}")


@app.command("export")
def export_command(
    tasks: Annotated[
        str, typer.Argument(help="Task JSONL file or directory, or a bundled dataset name.")
    ],
    out: Annotated[Path, typer.Option(help="Output .parquet file.")],
    format: Annotated[
        Literal["parquet", "verl"],
        typer.Option(
            help="parquet (Hugging Face datasets) | verl (verl RL layout)",
        ),
    ] = "parquet",
    split: Annotated[str, typer.Option(help="Split name recorded in verl's extra_info.")] = "train",
) -> None:
    """Export tasks as parquet for Hugging Face datasets, or in verl's RL parquet layout."""
    from agentwheel.export.datasets import export_parquet, export_verl

    if out.is_dir():
        raise fail(f"--out {out} is a directory: pass a file name, e.g. {out / 'tasks.parquet'}")
    task_set = read_task_set(tasks, "skipped")
    if format == "parquet":
        path = export_parquet(task_set.tasks, out)
    else:
        path = export_verl(task_set.tasks, out, split=split)
    console.print(f"wrote {len(task_set.tasks)} tasks to {path}")


def mount_other_commands() -> None:
    """Commands that live next to the code they drive."""
    from agentwheel.cli import bench as bench_cli
    from agentwheel.cli import evaluate as evaluate_cli
    from agentwheel.cli import industrial as industrial_cli
    from agentwheel.cli import reasoning as reasoning_cli
    from agentwheel.cli import serve as serve_cli
    from agentwheel.cli import study as study_cli
    from agentwheel.cli import train as train_cli
    from agentwheel.cli import view as view_cli

    synth_app.command("reasoning")(reasoning_cli.synth)
    evolve_app.command("reasoning")(reasoning_cli.evolve)
    industrial_cli.register(synth_app, evolve_app)
    evaluate_cli.register(app)
    train_cli.register(app)
    study_cli.register(app)
    serve_cli.register(app)
    bench_cli.register(app)
    view_cli.register(app)


mount_other_commands()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted: finished episodes are on disk; rerun with --resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
