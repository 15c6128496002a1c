"""`agentwheel study`: the learning study (agentwheel/study/), one resumable command.

agentwheel study [--config study|path.yaml] [--out runs/study] [--resume]
                 [--set study.rounds=3 ...] [--publish]
                 [--restore-from bench/results/study_run] [--export-to DIR]
                 [--shared-from runs/other-study]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in `train`: before torch loads
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agentwheel.cli.config_file import check_names, validated_config
from agentwheel.cli.errors import disk_full, fail, require_dir
from agentwheel.cli.progress import phase_bars
from agentwheel.core.run_layout import STUDY_JSON, StudyLayout
from agentwheel.study.config import ARMS, PASS_K, StudyConfig
from agentwheel.study.portable import export_study, rebuild_from_adapter, restore_study
from agentwheel.study.run import StudyError, run_study
from agentwheel.study.shared_from import SharedFromError, start_from_shared
from agentwheel.train.phases import MissingBranchKinds

console = Console(stderr=True)
PUBLISHED = Path("bench") / "results" / STUDY_JSON


def load_study_config(name_or_path: str, overrides: Sequence[str] = ()) -> StudyConfig:
    """The study config named by `--config` with its `--set` overrides; every mistake is
    one `UserError` line naming the key and where it came from."""
    path, config = validated_config(name_or_path, overrides, StudyConfig)
    check_names(config, path, overrides)
    return config


def study_command(
    config: Annotated[
        str, typer.Option(help="Study YAML file, or a bundled name (study, study-tiny).")
    ] = "study",
    out: Annotated[Path | None, typer.Option(help="Run directory; default runs/<name>.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the study in --out where it stopped.")
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: --set study.rounds=3 (repeatable)."),
    ] = None,
    publish: Annotated[
        bool, typer.Option(help=f"Also copy study.json to ./{PUBLISHED} (the committed result).")
    ] = False,
    restore_from: Annotated[
        Path | None,
        typer.Option(
            help="A portable copy (--export-to) to resume from: copied into --out, the "
            "merged weights rebuilt from the adapters; implies --resume."
        ),
    ] = None,
    export_to: Annotated[
        Path | None,
        typer.Option(
            help="Write the portable copy of --out (small enough to commit) to this folder "
            "and exit: what a later session on another machine needs to resume."
        ),
    ] = None,
    shared_from: Annotated[
        Path | None,
        typer.Option(
            help="Another study's directory whose finished shared phase (data, SFT, the "
            "refuse/base/SFT evals) this one copies: only the RL settings may differ."
        ),
    ] = None,
) -> None:
    """Does RL on flywheel data beat SFT alone? base, SFT, RL without and with the flywheel
    (same SFT checkpoint, same RL budget) and the refuse-everything floor on one held-out set:
    study.json, study.md and study_curves.png in --out."""
    study = load_study_config(config, set_ or [])
    out = out or Path("runs") / study.name
    require_dir(out)
    if export_to is not None:
        _export(out, export_to)
        return
    if shared_from is not None and (resume or restore_from is not None):
        raise fail("--shared-from starts a new study: leave out --resume and --restore-from")
    if restore_from is not None:
        _restore(restore_from, out, study)
        resume = True
    if shared_from is not None:
        _start_from_shared(shared_from, out, study)
        resume = True
    if StudyLayout(out).state.exists() and not resume:
        raise fail(f"{out} already holds a study: pass --resume to continue it, or another --out")
    with phase_bars(console) as (progress, on_progress):
        try:
            result = run_study(
                study, out, resume=resume, progress=on_progress, log=progress.console.print
            )
        except (MissingBranchKinds, StudyError) as exc:
            raise fail(str(exc)) from None
        except Exception as exc:
            if not disk_full(exc):
                raise
            raise fail(
                f"no space left on the device: the finished phases are in {out}; free some "
                "space, then rerun with --resume"
            ) from None
    table = Table(
        title=f"held-out pass^1 ({result['held_out_tasks']} tasks, {result['wall_s']:.0f}s)"
    )
    for column in ("arm", "pass^1", "95% CI", f"pass^{PASS_K}", "train pool"):
        table.add_column(column)
    for arm in ARMS:
        a = result["arms"][arm]
        table.add_row(
            arm,
            f"{a['pass1']:.3f}",
            f"[{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]",
            f"{a[f'pass_hat_{PASS_K}']:.3f}",
            f"{a['train_pool_pass1']:.3f}",
        )
    console.print(table)
    console.print(f"goals all met: {result['goal']['all_met']}; report: {StudyLayout(out).report}")
    if publish:
        PUBLISHED.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(StudyLayout(out).results, PUBLISHED)
        console.print(f"published: {PUBLISHED}")


def _start_from_shared(source: Path, out: Path, study: StudyConfig) -> None:
    try:
        copied = start_from_shared(source, out, study)
    except SharedFromError as exc:
        raise fail(str(exc)) from None
    console.print(f"copied from {source}: {', '.join(copied.done)}")
    for eval_dir, rejudged in copied.rejudged.items():
        console.print(f"  {eval_dir}: {rejudged.describe()}")


def _export(out: Path, dest: Path) -> None:
    files = StudyLayout(out)
    if not files.state.exists() and not files.shared.root.is_dir():
        raise fail(f"{out} holds no study to export")
    try:
        summary = export_study(out, dest)
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"portable study: {summary['files']} files, {summary['bytes'] / 1e6:.1f} MB → {dest}"
    )


def _restore(src: Path, out: Path, study: StudyConfig) -> None:
    try:
        rebuilt = restore_study(src, out, rebuild_from_adapter(study.model, study.seed))
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print(f"restored {src} into {out}; rebuilt the weights of {len(rebuilt)} checkpoints")


def register(app: typer.Typer) -> None:
    app.command("study")(study_command)
