"""`agentwheel train` and `agentwheel demo`: run a training schedule from a YAML config.

Mount on the main app with `register(app)`:

    agentwheel train --config demo|path.yaml [--out runs/x] [--resume] [--set grpo.lr=2e-6]
    agentwheel demo [--quick] [--out runs/demo] [--resume]
    agentwheel check-config --config demo|path.yaml [--set ...]   (cli/check_config.py)
"""

from __future__ import annotations

import os

# Spinning OpenMP workers starve each other on shared cores; set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agentwheel.cli import check_config
from agentwheel.cli.config_file import load_schedule_config
from agentwheel.cli.errors import UserErrorGroup, disk_full, fail, require_dir
from agentwheel.cli.progress import phase_bars
from agentwheel.core.external_training import ExternalTrainer
from agentwheel.core.resources import bundled_config, bundled_config_names
from agentwheel.core.run_layout import RunLayout
from agentwheel.settings.schedule import ScheduleConfig
from agentwheel.settings.trainer import describe
from agentwheel.train.run_state import RunStateDamaged
from agentwheel.train.schedule import run_schedule

console = Console(stderr=True)
DEMO_CONFIG = bundled_config("demo")

# `demo --quick`: one round, fewer tasks and steps, shorter turns (a few minutes on CPU).
QUICK_OVERRIDES = (
    "name=demo-quick",
    "data.tasks_per_workflow=1",
    "data.held_out_tasks=2",
    "data.held_out_seen_tasks=2",
    "sft.max_tasks=4",
    "sft.train.epochs=1",
    "rollout.max_new_tokens=48",
    "eval.max_new_tokens=48",
    "runner.max_agent_turns=3",
    "rounds=[{kind: agentic, steps: 1, batch_groups: 1, group_size: 4, max_attempts: 1, "
    "evolve_tasks_per_workflow: 1, band_samples: 2, probe_tasks: 2}]",
)


def print_config(config: ScheduleConfig) -> None:
    """The resolved config, with the doc of every trainer knob."""
    console.print(f"[bold]config[/] ({config.name})")
    console.print(config.to_yaml())
    for title, trainer_config in (("SFT", config.sft.train), ("GRPO", config.grpo)):
        table = Table(title=f"{title} knobs")
        for column in ("name", "value", "meaning"):
            table.add_column(column)
        for name, value, doc in describe(trainer_config):
            table.add_row(name, str(value), doc)
        console.print(table)


def external_trainer(config: ScheduleConfig, log: Callable[[str], None]) -> ExternalTrainer | None:
    """The engine that runs the rounds' RL steps when `trainer.backend` is not ours."""
    if config.trainer.backend == "builtin":
        return None
    from agentwheel.integrations.verl.schedule_trainer import VerlTrainer

    settings = config.trainer.verl
    python = Path(settings.python)
    if not python.exists() and os.sep in settings.python:
        raise fail(
            f"trainer.verl.python {settings.python} does not exist: create verl's virtualenv "
            "with `make verl-env` (or point trainer.verl.python at an interpreter with verl)"
        )
    try:
        return VerlTrainer(**settings.model_dump(), log=log)
    except ValueError as exc:
        raise fail(str(exc)) from exc


def run_with_progress(config: ScheduleConfig, out: Path, resume: bool) -> None:
    require_dir(out)
    if RunLayout(out).state.exists() and not resume:
        raise fail(f"{out} already holds a run: pass --resume to continue it, or another --out")
    print_config(config)
    with phase_bars(console) as (progress, on_progress):
        start = time.perf_counter()
        try:
            state = run_schedule(
                config,
                out,
                resume=resume,
                progress=on_progress,
                log=progress.console.print,
                external=external_trainer(config, progress.console.print),
            )
        except RunStateDamaged as exc:
            raise fail(str(exc)) from None
        except OSError as exc:
            if not disk_full(exc):
                raise
            raise fail(
                f"no space left on the device: the run so far is in {out}; free some space, "
                "then rerun with --resume"
            ) from None
    table = Table(title=f"held-out pass^1 ({time.perf_counter() - start:.0f}s)")
    table.add_column("stage")
    table.add_column("pass^1", justify="right")
    for name, value in state.evals.items():
        table.add_row(name, f"{value:.3f}")
    console.print(table)
    console.print(f"report: {RunLayout(out).report}")


def train_command(
    config: Annotated[
        str,
        typer.Option(
            help="Schedule YAML file, or a bundled config name "
            f"({', '.join(bundled_config_names())})."
        ),
    ],
    out: Annotated[Path | None, typer.Option(help="Run directory; default runs/<name>.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its last checkpoint.")
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: --set grpo.lr=2e-6 (repeatable)."),
    ] = None,
) -> None:
    """Base eval → SFT warm start → agentic RL rounds → held-out evals and report.md."""
    schedule = load_schedule_config(config, set_ or [])
    run_with_progress(schedule, out or Path("runs") / schedule.name, resume)


def demo_command(
    quick: Annotated[bool, typer.Option(help="A much smaller run (minutes on CPU).")] = False,
    out: Annotated[Path | None, typer.Option(help="Run directory; default runs/<name>.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
) -> None:
    """The CPU demo: SmolLM2-135M learns tool use by SFT then GRPO (configs/demo.yaml)."""
    schedule = load_schedule_config(DEMO_CONFIG, QUICK_OVERRIDES if quick else ())
    run_with_progress(schedule, out or Path("runs") / schedule.name, resume)


def register(app: typer.Typer) -> None:
    """Add `train`, `demo` and `check-config` to an app."""
    app.command("train")(train_command)
    app.command("demo")(demo_command)
    check_config.register(app)


app = typer.Typer(
    help="Training schedules.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=UserErrorGroup,
)
register(app)
