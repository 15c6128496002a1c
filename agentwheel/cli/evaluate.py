"""`agentwheel eval`: run a policy on agentic tasks and report state-verified pass^k."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentwheel.cli.errors import disk_full, fail, in_range, require_dir
from agentwheel.cli.eval_gate import gate_tasks
from agentwheel.cli.eval_like import EvalFlags, eval_choices
from agentwheel.cli.task_input import read_task_set
from agentwheel.core.task import Task
from agentwheel.envs.trajectory import Trajectory
from agentwheel.eval.two_evals import EvalComparison, EvalsError, compare_evals
from agentwheel.settings.runner import RunnerSettings
from agentwheel.settings.sampling import SAMPLED_EVAL_TEMPERATURE, EvalSettings

console = Console(stderr=True)
EVAL, RUNNER = EvalSettings(), RunnerSettings()  # the defaults, said in the help


def pass_table(summary: dict[str, Any], title: str) -> Table:
    k = summary["k"]
    table = Table(title=title)
    table.add_column("slice")
    table.add_column("tasks", justify="right")
    for i in range(1, k + 1):
        table.add_column(f"pass^{i}", justify="right")

    def row(name: str, group: dict[str, Any], style: str = "") -> None:
        values = [f"{group['pass_hat_k'][str(i)]:.3f}" for i in range(1, k + 1)]
        table.add_row(name, str(group["n_tasks"]), *values, style=style)

    row("overall", summary, style="bold")
    for name, group in summary["by_domain"].items():
        row(f"domain: {name}", group)
    for name, group in summary["by_branch_kind"].items():
        row(f"branch: {name}", group)
    return table


def cost_table(cost: dict[str, Any]) -> Table:
    """Success with its interval beside latency, tokens and tool calls per episode."""
    table = Table(title="per episode (median / p95 / mean)")
    for column in ("success [95% CI]", "latency s", "model s", "tokens", "tool calls"):
        table.add_column(column, justify="right")
    if not cost.get("n_episodes"):
        return table

    def spread(name: str, digits: int) -> str:
        q = cost[name]
        return " / ".join(f"{q[k]:.{digits}f}" for k in ("median", "p95", "mean"))

    low, high = cost["success_ci95"]
    table.add_row(
        f"{cost['success_rate']:.3f} [{low:.3f}, {high:.3f}]",
        spread("latency_s", 3),
        spread("model_latency_s", 3),
        spread("generated_tokens", 0),
        spread("tool_calls", 1),
    )
    return table


def eval_command(
    tasks: Annotated[
        str | None,
        typer.Option(
            help="Task JSONL file or directory, or a bundled dataset name (default: fixtures; "
            "with --like, the run's held-out set)."
        ),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(help="oracle | hack | refuse | hf:default | hf:<path> | openai:<model>@<url>"),
    ] = "oracle",
    k: Annotated[
        int | None,
        typer.Option(
            "-k",
            "--k",
            callback=in_range(1),
            help=f"Trials per task; pass^1..pass^k are reported (default {EVAL.k}: a "
            "schedule's eval.k).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (summary.json, traces.jsonl).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue a run in --out without redoing finished episodes.")
    ] = False,
    backend: Annotated[
        Literal["auto", "mock", "sqlite"],
        typer.Option(
            help="auto (the task's own) | mock | sqlite",
        ),
    ] = "auto",
    user: Annotated[str, typer.Option(help="scripted | llm:<model spec>")] = "scripted",
    tool_simulator: Annotated[
        str | None,
        typer.Option(
            help="Model spec that answers off-script mock calls (default: a typed no_result error)."
        ),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(
            callback=in_range(0),
            help=f"Sampling temperature (default {EVAL.temperature}: a schedule's "
            f"eval.temperature; {SAMPLED_EVAL_TEMPERATURE} when k > 1).",
        ),
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(
            callback=in_range(1),
            help=f"Token limit of one agent turn (default {EVAL.max_new_tokens}: a schedule's "
            "eval.max_new_tokens).",
        ),
    ] = None,
    max_turns: Annotated[
        int | None,
        typer.Option(
            callback=in_range(1),
            help=f"Agent turns before an episode is cut (default {RUNNER.max_agent_turns}: a "
            "schedule's runner.max_agent_turns).",
        ),
    ] = None,
    max_episode_tokens: Annotated[
        int | None,
        typer.Option(
            callback=in_range(1),
            help=f"Tokens before an episode is cut (default {RUNNER.max_episode_tokens}: a "
            "schedule's runner.max_episode_tokens).",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            callback=in_range(1),
            help=f"Episodes per batched model call (default {RUNNER.batch_size}: a "
            "schedule's runner.batch_size).",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(callback=in_range(1), help="Evaluate only the first N tasks.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(callback=in_range(0), help="Sampling seed (default 0).")
    ] = None,
    dtype: Annotated[
        str | None, typer.Option(help="float32 | bfloat16 for hf: policies (default float32).")
    ] = None,
    request_timeout: Annotated[
        float | None,
        typer.Option(
            callback=in_range(0, min_open=True),
            help="Seconds an openai: policy request may take, whole reply included, per attempt (> 0).",
        ),
    ] = None,
    max_retries: Annotated[
        int | None,
        typer.Option(
            callback=in_range(0),
            help="Retries per request to an openai: policy (429/5xx/timeouts).",
        ),
    ] = None,
    validate: Annotated[
        bool,
        typer.Option(
            help="Run the validation gate first and skip the tasks it rejects "
            "(scripted replays: seconds)."
        ),
    ] = True,
    like: Annotated[
        Path | None,
        typer.Option(
            help="A training run's directory: evaluate as its held-out evals did (its "
            "saved config.yaml: eval, runner, seed and model settings, template keywords "
            "included; tasks default to its held-out set). Flags given alongside win."
        ),
    ] = None,
) -> None:
    """Run a policy on agentic tasks and report state-verified pass^k. Defaults are a
    training schedule's held-out eval settings (agentwheel/settings/), so a checkpoint
    is measured as its run measured it; --like <run dir> takes that run's own."""
    from agentwheel.core.dir_lock import DirectoryBusy
    from agentwheel.envs.tool_simulator import LLMToolSimulator
    from agentwheel.eval.evaluate import SUMMARY, ResumeMismatch, run_eval
    from agentwheel.eval.stances import stance_lines
    from agentwheel.llm.openai_compat import ModelConfigError
    from agentwheel.specs import SpecError, load_chat_model, load_policy, load_user

    flags = EvalFlags(
        tasks=tasks,
        k=k,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        max_turns=max_turns,
        max_episode_tokens=max_episode_tokens,
        batch_size=batch_size,
        seed=seed,
        dtype=dtype,
        backend=backend,
    )
    choices = eval_choices(flags, like)
    tasks, k = choices.tasks, choices.k
    task_set = read_task_set(tasks, "skipped")
    selected = task_set.tasks[:limit] if limit is not None else task_set.tasks
    if backend == "sqlite":
        no_world = [t.id for t in selected if t.sqlite is None]
        if no_world:
            raise fail(
                f"{len(no_world)} tasks have no SQLite world (e.g. {no_world[0]}); use --backend mock"
            )
    open_collections(selected)
    skipped: list[dict[str, Any]] = []
    if validate:
        selected, skipped = gate_tasks(selected, backend, console)
    params = choices.params
    out = out or Path("runs") / f"eval-{policy.replace(':', '-').replace('/', '_')}"
    require_dir(out)
    try:
        agent = load_policy(
            policy, params, choices.dtype, request_timeout, max_retries, local=choices.local
        )
        simulator = load_user(user)
        tool_sim = LLMToolSimulator(load_chat_model(tool_simulator)) if tool_simulator else None
    except SpecError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # a model that cannot be loaded is a user-facing error here
        raise fail(f"could not load {policy!r}: {exc}") from None
    # At most one batch in flight (RunnerSettings.runner_config): episodes then finish (and
    # reach disk) a batch at a time instead of all together at the end.
    config = choices.runner
    meta = {
        "policy": policy,
        "tasks": path_from(out, tasks),
        "backend": backend,
        "user": user,
        "tool_simulator": tool_simulator,
        "sampling": params.model_dump(),
        "runner": dataclasses.asdict(config),
        "like": str(like) if like is not None else None,
        "skipped_invalid_tasks": skipped,
        # Over a live search API: no gold replay is possible, the answer alone is scored.
        "answer_only_tasks": [t.id for t in selected if t.search is not None and t.search.live],
    }
    console.print(f"evaluating [bold]{policy}[/] on {len(selected)} tasks × {k} trials → {out}")
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pass {task.fields[passed]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task("episodes", total=len(selected) * k, passed=0)
        passed = 0

        def tick(trajectory: Trajectory) -> None:
            nonlocal passed
            passed += trajectory.passed
            progress.update(bar, advance=1, passed=passed)

        try:
            summary = run_eval(
                selected,
                agent,
                simulator,
                k,
                out,
                config,
                resume=resume,
                meta=meta,
                load_errors=task_set.errors,
                on_episode=tick,
                tool_simulator=tool_sim,
            )
        except (FileExistsError, ResumeMismatch, DirectoryBusy) as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            console.print(f"interrupted: finished episodes are in {out}; rerun with --resume")
            raise typer.Exit(130) from None
        except ModelConfigError as exc:
            raise fail(f"{exc}; finished episodes are in {out}, rerun with --resume") from None
        except OSError as exc:
            if not disk_full(exc):
                raise
            raise fail(
                f"no space left on the device: finished episodes are in {out}; free some "
                "space, then rerun with --resume"
            ) from None
    if summary["resumed_episodes"]:
        console.print(f"resumed: {summary['resumed_episodes']} episodes were already on disk")
    Console().print(pass_table(summary, f"{policy} on {tasks}"))
    Console().print(cost_table(summary["cost"]))
    problems = {**summary["terminations"], **summary["invalid_tool_calls"]}
    problems.pop("user_ended", None)
    if problems:
        console.print(f"counted problems: {json.dumps(problems)}")
    if summary["failure_reasons"]:
        console.print(f"why episodes failed: {json.dumps(summary['failure_reasons'])}")
    console.print("what the agent did, by branch kind:")
    for line in stance_lines(summary["stances"]):
        console.print(f"  {line}", markup=False)
    console.print(f"wrote {out / SUMMARY} and traces.jsonl")


def open_collections(tasks: Sequence[Task]) -> None:
    """Build (or connect to) every search collection the tasks name, so a missing folder
    or a bad search API config is one clear error before any episode runs."""
    from agentwheel.envs.search_index import load_collection

    for spec in sorted({t.search.collection for t in tasks if t.search is not None}):
        try:
            load_collection(spec)
        except (ValueError, FileNotFoundError) as exc:
            raise fail(f"search collection {spec!r}: {exc}") from None


def path_from(report_dir: Path, tasks: str) -> str:
    """The task source as a report records it: a path relative to the report's directory
    (readers resolve it from there), a bundled name as it is."""
    if not Path(tasks).exists():
        return tasks
    return os.path.relpath(Path(tasks).resolve(), report_dir.resolve())


def rejudge_command(
    eval_dir: Annotated[
        Path, typer.Argument(help="An eval's output folder (traces.jsonl, summary.json).")
    ],
    tasks: Annotated[
        str,
        typer.Option(help="The tasks it ran on: a JSONL file, a folder or a bundled name."),
    ],
) -> None:
    """Judge an eval's saved episodes again under this version's reward, without running
    the model: rewrites its traces.jsonl and summary.json (after a change to the reward)."""
    from agentwheel.eval.evaluate import SUMMARY
    from agentwheel.eval.rejudge import RejudgeError, rejudge_eval

    task_set = read_task_set(tasks, "skipped")
    try:
        rejudged = rejudge_eval(eval_dir, {t.id: t for t in task_set.tasks})
    except RejudgeError as exc:
        raise fail(str(exc)) from None
    console.print(rejudged.describe())
    summary = eval_dir / SUMMARY
    if summary.is_file():
        console.print(pass_table(json.loads(summary.read_text()), f"{eval_dir}, judged again"))


def compare_command(
    a: Annotated[Path, typer.Argument(help="The first eval's folder (or its traces.jsonl).")],
    b: Annotated[Path, typer.Argument(help="The second eval's folder (or its traces.jsonl).")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the comparison here as JSON.")
    ] = None,
    resamples: Annotated[
        int, typer.Option(callback=in_range(100), help="Bootstrap draws of tasks.")
    ] = 10_000,
    seed: Annotated[int, typer.Option(callback=in_range(0), help="Bootstrap seed.")] = 0,
) -> None:
    """Two evals of the same tasks: pass^1 of each, B - A with its paired 95% bootstrap
    interval over tasks, the tasks that flipped, pass counts per branch kind and how many
    episodes are token for token the same."""
    from agentwheel.core.atomic import write_text_atomic

    try:
        result = compare_evals(a, b, resamples, seed)
    except EvalsError as exc:
        raise fail(str(exc)) from None
    console.print(comparison_table(result))
    d = result.diff
    console.print(
        f"B - A: {d.mean:+.3f}, paired 95% interval [{d.ci95[0]:+.3f}, {d.ci95[1]:+.3f}] "
        f"(n={result.tasks} tasks); passed only in A: {result.passed_only_a}, only in B: "
        f"{result.passed_only_b}; first trials token-identical: {result.identical_episodes} "
        f"of {result.tasks}"
    )
    if result.only_in_a or result.only_in_b:
        console.print(f"left out: {result.only_in_a} tasks only in A, {result.only_in_b} only in B")
    if json_out is not None:
        write_text_atomic(json_out, result.model_dump_json(indent=2))


def comparison_table(result: EvalComparison) -> Table:
    table = Table(title=f"A = {result.a}\nB = {result.b}")
    for column in ("slice", "tasks", "A passed", "B passed"):
        table.add_column(column, justify="left" if column == "slice" else "right")

    def count(value: float) -> str:
        return f"{value:g}"

    table.add_row(
        "overall",
        str(result.tasks),
        f"{count(result.passed_a)} ({result.pass1_a:.3f})",
        f"{count(result.passed_b)} ({result.pass1_b:.3f})",
        style="bold",
    )
    for kind, c in result.by_kind.items():
        table.add_row(f"branch: {kind}", str(c.tasks), count(c.passed_a), count(c.passed_b))
    return table


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("rejudge")(rejudge_command)
    app.command("compare")(compare_command)
