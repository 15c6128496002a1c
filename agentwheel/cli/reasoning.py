"""Command line for the reasoning flywheel (mounted by agentwheel/cli/app.py as
`agentwheel synth reasoning` and `agentwheel evolve reasoning`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentwheel.cli.errors import UserErrorGroup, fail, in_range
from agentwheel.core.messages import SamplingParams
from agentwheel.core.run_layout import MANIFEST_FILE, PROBLEMS_FILE
from agentwheel.flywheels.reasoning.evolve import EvolveConfig, evolve_reasoning
from agentwheel.flywheels.reasoning.filters import Band
from agentwheel.flywheels.reasoning.progress import RichProgress
from agentwheel.flywheels.reasoning.stage_io import StageConfigMismatch
from agentwheel.flywheels.reasoning.synth import SynthConfig, synth_reasoning
from agentwheel.flywheels.reasoning.teacher import LLM_OPERATORS
from agentwheel.settings.answer_format import AnswerFormat

app = typer.Typer(
    help="Reasoning flywheel: seed problems, evolve what the policy fails.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=UserErrorGroup,
)
console = Console(stderr=True)


def _rejection_lines(manifest: dict[str, Any]) -> None:
    for stage, reasons in manifest["rejections"].items():
        for reason, count in reasons.items():
            console.print(escape(f"  rejected [{stage}] {reason}: {count}"))


@app.command("synth")
def synth(
    seeds: Annotated[
        str,
        typer.Option(
            help="bundled | gym:<generator>[:<count>] | a seed plan (.yaml) | a .jsonl/.parquet "
            "file or a directory of them."
        ),
    ] = "bundled",
    out: Annotated[
        Path, typer.Option(help="Output directory (problems.jsonl, manifest.json).")
    ] = Path("runs/reasoning/seeds"),
    limit: Annotated[
        int | None, typer.Option(callback=in_range(1), help="Keep only the first N seeds.")
    ] = None,
    seed: Annotated[
        int, typer.Option(callback=in_range(0), help="Seed for procedural generators.")
    ] = 0,
) -> None:
    """Load seed problems, check every answer, drop duplicates."""
    config = SynthConfig(seed=seed, limit=limit)
    console.print(escape(f"synth reasoning: {seeds} → {out}"))
    console.print(escape(f"config: {config.model_dump_json()}"), soft_wrap=True)
    try:
        with RichProgress(console) as progress:
            manifest = synth_reasoning(seeds, out, config, progress)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    counts = manifest["counts"]
    console.print(
        f"kept {counts['kept']} of {counts['loaded']} seeds "
        f"({counts['kept_procedural']} procedural, {counts['load_errors']} bad records)"
    )
    _rejection_lines(manifest)
    if counts["kept"] == 0:
        raise fail(
            f"no problems kept from --seeds {seeds} ({counts['loaded']} loaded, "
            f"{counts['load_errors']} bad records; every count: {out / MANIFEST_FILE})"
        )
    console.print(f"wrote {out / PROBLEMS_FILE} and {out / MANIFEST_FILE}")


def _pass_table(manifest: dict[str, Any]) -> Table:
    rates = manifest["pass_rates"]
    table = Table(title=f"round {manifest['round']}: pass rate under {manifest['policy']}")
    table.add_column("group")
    table.add_column("problems", justify="right")
    table.add_column("parent pass", justify="right")
    table.add_column("child pass", justify="right")

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    table.add_row(
        "all children",
        str(rates["pairs"]),
        fmt(rates["parents_evolved"]),
        fmt(rates["children"]),
        style="bold",
    )
    for op, group in rates["by_operator"].items():
        table.add_row(
            op, str(group["children"]), fmt(group["parent_mean"]), fmt(group["child_mean"])
        )
    return table


@app.command("evolve")
def evolve(
    report: Annotated[
        Path, typer.Option(help="Directory with problems.jsonl (synth or a previous round).")
    ],
    policy: Annotated[
        str, typer.Option(help="Policy model spec: hf:default | hf:<path> | openai:<model>@<url>.")
    ],
    out: Annotated[
        Path, typer.Option(help="Output directory; rerun with the same arguments to resume.")
    ],
    teacher: Annotated[
        str | None, typer.Option(help="Teacher model spec for the LLM operators (none: offline).")
    ] = None,
    solver: Annotated[
        list[str] | None,
        typer.Option(
            help="Solver model spec for the consistency check (repeat; default: the teacher)."
        ),
    ] = None,
    min_agree: Annotated[
        int | None,
        typer.Option(callback=in_range(1), help="Solvers that must agree (default: majority)."),
    ] = None,
    n: Annotated[
        int, typer.Option("-n", "--n", callback=in_range(1), help="Policy samples per problem.")
    ] = 4,
    max_new_tokens: Annotated[
        int, typer.Option(callback=in_range(1), help="Token limit of a policy answer.")
    ] = 256,
    temperature: Annotated[
        float, typer.Option(callback=in_range(0), help="Policy sampling temperature.")
    ] = 0.7,
    answer_format: Annotated[
        Literal["boxed", "hash", "answer_tag"],
        typer.Option(
            help="boxed | hash | answer_tag",
        ),
    ] = "boxed",
    operators: Annotated[
        str, typer.Option(help=f"LLM operators, comma-separated ({','.join(LLM_OPERATORS)}).")
    ] = ",".join(LLM_OPERATORS),
    procedural_children: Annotated[
        int,
        typer.Option(callback=in_range(0), help="Procedural children per failed parent (0: none)."),
    ] = 2,
    band_low: Annotated[
        float,
        typer.Option(callback=in_range(0, 1), help="Learnable band: pass rate strictly above."),
    ] = 0.0,
    band_high: Annotated[
        float,
        typer.Option(callback=in_range(0, 1), help="Learnable band: pass rate strictly below."),
    ] = 1.0,
    batch_size: Annotated[
        int, typer.Option(callback=in_range(1), help="Requests per batched model call.")
    ] = 32,
    limit: Annotated[
        int | None,
        typer.Option(callback=in_range(1), help="Use only the first N problems of the report."),
    ] = None,
    round_: Annotated[
        int | None,
        typer.Option("--round", callback=in_range(1), help="Round number of the children."),
    ] = None,
    seed: Annotated[
        int, typer.Option(callback=in_range(0), help="Run seed (sampling, operators).")
    ] = 0,
    dtype: Annotated[str, typer.Option(help="float32 | bfloat16 for hf: models.")] = "float32",
) -> None:
    """One round: attempt, evolve failures, verify, keep the learnable band."""
    from agentwheel.specs import SpecError, load_chat_model

    if not (report / PROBLEMS_FILE).is_file():
        raise fail(
            f"--report {report} has no {PROBLEMS_FILE}: run `agentwheel synth reasoning --out "
            f"{report}` (or a previous evolve round) first"
        )
    try:
        config = EvolveConfig(
            n=n,
            round=round_,
            policy_params=SamplingParams(
                max_new_tokens=max_new_tokens, temperature=temperature, seed=seed
            ),
            answer_format=AnswerFormat(name=answer_format),
            batch_size=batch_size,
            procedural_children=procedural_children,
            llm_operators=tuple(op.strip() for op in operators.split(",") if op.strip()),
            min_agree=min_agree,
            band=Band(low=band_low, high=band_high),
            limit=limit,
            seed=seed,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    try:
        policy_model = load_chat_model(policy, dtype=dtype)
        teacher_model = load_chat_model(teacher, dtype=dtype) if teacher else None
        solver_models = [load_chat_model(s, dtype=dtype) for s in solver or []]
    except SpecError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # a model that cannot be loaded is a user-facing error here
        raise fail(f"could not load a model: {exc}") from None
    mode = f"teacher {teacher}" if teacher else "offline (procedural operators only)"
    console.print(f"evolve reasoning: {report} → {out}; policy {policy}; {mode}")
    console.print(escape(f"config: {config.model_dump_json()}"), soft_wrap=True)
    try:
        with RichProgress(console) as progress:
            manifest = evolve_reasoning(
                report, policy_model, teacher_model, out, solver_models, config, progress
            )
    except (FileNotFoundError, ValueError, StageConfigMismatch) as exc:
        raise fail(str(exc)) from None
    Console().print(_pass_table(manifest))
    counts = manifest["counts"]
    console.print(escape(json.dumps(counts)), soft_wrap=True)
    exact = manifest["exactness"]
    console.print(
        f"kept {counts['kept']} problems ({counts['children_in_band']} new, "
        f"{counts['parents_in_band']} parents in band); procedural answers exact: "
        f"{exact['procedural_kept_exact']}/{exact['procedural_kept']}"
    )
    _rejection_lines(manifest)
    if counts["kept"] == 0:
        raise fail(
            f"no problems kept: none of the parents or children is in the learnable band "
            f"({band_low} < pass rate < {band_high}) under {policy} (every count: {out / MANIFEST_FILE})"
        )
    console.print(f"wrote {out / PROBLEMS_FILE} and {out / MANIFEST_FILE}")
