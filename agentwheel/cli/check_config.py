"""`agentwheel check-config`: check a schedule or study config without running it.

It reads settings only, so the entry point (agentwheel/cli/__init__.py) runs it without
the rest of the command line: checking a config loads no torch and no flywheel."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from agentwheel.cli.config_file import check_names, checked_config
from agentwheel.cli.errors import UserErrorGroup
from agentwheel.core.resources import bundled_config_names

console = Console(stderr=True)


def check_config_command(
    config: Annotated[
        str,
        typer.Option(
            help="Schedule or study YAML file, or a bundled config name "
            f"({', '.join(bundled_config_names())})."
        ),
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: --set grpo.lr=2e-6 (repeatable)."),
    ] = None,
) -> None:
    """Check a schedule or study config without running it: every key and value, the
    round kinds, the model spec and the workflow ids (model.device is checked where the
    run starts). Loads no model."""
    path, checked = checked_config(config, set_ or [])
    check_names(checked, path, set_ or [])
    kinds = ", ".join(r.kind for r in checked.rounds) or "none"
    console.print(
        f"ok: {config}: {type(checked).__name__}, model {checked.model.spec}, rounds: {kinds}"
    )


def register(app: typer.Typer) -> None:
    app.command("check-config")(check_config_command)


def run_alone(args: list[str]) -> None:
    """`agentwheel check-config ARGS` from an application of this command alone (its
    mistakes reported as the whole CLI reports them: one `error:` line)."""
    alone = typer.Typer(cls=UserErrorGroup, add_completion=False)
    alone.callback()(lambda: None)  # a group, so the command keeps its name
    register(alone)
    alone(args=["check-config", *args], prog_name="agentwheel")
