"""Workflow files on the command line: the `--workflows` option, `validate --workflows`
(check without synthesizing) and `workflow draft` (a teacher writes one from a procedure)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from agentwheel.cli.errors import fail, in_range
from agentwheel.core.rejection import Rejection

console = Console(stderr=True)
BUNDLED = "bundled"


def workflows_source(value: str | None, option: str = "--workflows") -> str | None:
    """None for the bundled workflows; else the path, which must exist."""
    if value is None or value == BUNDLED:
        return None
    path = Path(value)
    if not path.exists():
        raise fail(
            f"{option} {value}: no such file or directory; pass a workflow YAML file, a "
            f"directory of them, or '{BUNDLED}'"
        )
    if path.is_dir() and not [*path.glob("*.yaml"), *path.glob("*.yml")]:
        raise fail(f"{option} {value}: the directory holds no .yaml workflow files")
    return value


def print_workflow_rejections(rejections: list[Rejection]) -> None:
    """One line per rejected workflow file: the file, the field path and the problems."""
    for r in rejections:
        where = f"{r.item}: {r.field}" if r.field else r.item
        console.print(
            f"[red]rejected workflow[/] {escape(where)}: {escape(r.detail)}", soft_wrap=True
        )


def print_workflow_warnings(warnings: list[str]) -> None:
    """One line per warning (what loads but is likely not meant), the same in `validate
    --workflows` and `synth`."""
    for text in warnings:
        console.print(f"[yellow]warning[/] {escape(text)}", soft_wrap=True)


def validate_workflows(spec: str) -> None:
    """Load every workflow of `spec` with the strict loader, print each problem with its
    file and field path, and exit 1 when any file is rejected."""
    from agentwheel.flywheels.agentic.workflow_loader import (
        WorkflowError,
        load_workflow,
        workflow_paths,
        workflow_warnings,
    )

    source = workflows_source(spec)
    paths = workflow_paths(source)
    seen: dict[str, Path] = {}
    bad = 0
    for path in paths:
        try:
            workflow = load_workflow(path)
        except WorkflowError as exc:
            bad += 1
            for field, message in exc.problems:
                line = f"{path}: {field}: {message}" if field else f"{path}: {message}"
                console.print(f"[red]error[/] {escape(line)}", soft_wrap=True)
            continue
        if workflow.id in seen:
            bad += 1
            console.print(
                f"[red]error[/] {escape(str(path))}: id: workflow id {workflow.id!r} is also "
                f"in {escape(str(seen[workflow.id]))}; give each workflow its own id",
                soft_wrap=True,
            )
            continue
        seen[workflow.id] = path
        console.print(f"[green]ok[/] {escape(str(path))} ({workflow.id})")
        print_workflow_warnings(
            [f"{workflow.id}: {field}: {message}" for field, message in workflow_warnings(workflow)]
        )
    console.print(f"{len(paths) - bad} of {len(paths)} workflow files load")
    if bad:
        raise typer.Exit(1)


workflow_app = typer.Typer(help="Write and check workflow YAML.", no_args_is_help=True)


@workflow_app.command("draft")
def draft_command(
    procedure: Annotated[
        Path, typer.Option("--from", help="A plain-language procedure (markdown or text).")
    ],
    teacher: Annotated[str, typer.Option(help="Teacher model spec (openai:<model>@<url>).")],
    out: Annotated[Path, typer.Option(help="Where to write the workflow YAML.")],
    attempts: Annotated[
        int,
        typer.Option(
            callback=in_range(1), help="Answers the teacher may give (each retry sees the errors)."
        ),
    ] = 4,
    seed: Annotated[int, typer.Option(callback=in_range(0), help="Sampling seed.")] = 0,
) -> None:
    """Ask a teacher model to write a workflow YAML from a plain-language procedure; the
    strict loader checks each answer, its errors go back to the teacher, and the file is
    written only when it loads."""
    from agentwheel.flywheels.agentic.workflow_draft import DraftConfig, draft_workflow
    from agentwheel.llm.openai_compat import ModelConfigError
    from agentwheel.specs import SpecError, load_chat_model

    if not procedure.is_file():
        raise fail(f"--from {procedure}: no such file; pass the procedure as a text file")
    if out.is_dir():
        raise fail(f"--out {out} is a directory: pass a file name, e.g. {out / 'workflow.yaml'}")
    try:
        model = load_chat_model(teacher)
    except SpecError as exc:
        raise fail(str(exc)) from None
    text = procedure.read_text(encoding="utf-8")
    try:
        with console.status(f"drafting a workflow with {teacher}"):
            result = draft_workflow(text, model, out, DraftConfig(attempts=attempts, seed=seed))
    except ModelConfigError as exc:
        raise fail(str(exc)) from None
    for i, failure in enumerate(result.failures, start=1):
        console.print(f"[yellow]answer {i} rejected[/] {escape(failure)}", soft_wrap=True)
    if result.workflow is None:
        raise fail(
            f"no loadable workflow after {result.attempts} answers "
            f"({len(result.failures)} rejected; the last problems are listed above)"
        )
    console.print(
        f"wrote {out} ({result.workflow.id}) after {result.attempts} answer(s), "
        f"{len(result.failures)} rejected; check it with `agentwheel synth agentic "
        f"--workflows {out} --out <dir>`"
    )
