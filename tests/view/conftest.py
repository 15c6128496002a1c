"""A run directory for the browser tests, made by the real writers: held-out evals of the
bundled fixtures (the cautious refuser, look up then decline, as `base`, the oracle as `sft`), the run state, metrics
lines and a round report. One refused episode carries HTML and script in the agent's text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentwheel.core.dataset import load_tasks
from agentwheel.core.run_layout import EVALS_DIR, ROUND_REPORT, ROUNDS_DIR, round_dir_name
from agentwheel.envs.scripted import CautiousPolicy, OraclePolicy
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.user import ScriptedUser
from agentwheel.eval.evaluate import TRACES, run_eval
from agentwheel.settings.runner import RunnerConfig
from agentwheel.train.metrics_log import MetricsLog
from agentwheel.train.run_state import RunState
from agentwheel.view.build import build_page_data
from agentwheel.view.page_data import PageData

PAYLOAD = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
INJECTED_TASK = "airline-happy-01"


def inject_payload(traces: Path, task_id: str) -> None:
    """Put HTML and script into the first agent message of `task_id`'s episode."""
    lines = []
    for line in traces.read_text().splitlines():
        trajectory = Trajectory.model_validate_json(line)
        if trajectory.task_id == task_id:
            agent = next(m for m in trajectory.messages if m.role == "assistant")
            agent.content = f"{agent.content} {PAYLOAD}"
        lines.append(trajectory.model_dump_json())
    traces.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("view") / "run"
    tasks = load_tasks("fixtures").tasks
    passes = {}
    for stage, policy in (("base", CautiousPolicy()), ("sft", OraclePolicy())):
        out = root / EVALS_DIR / stage
        summary = run_eval(
            tasks, policy, ScriptedUser(), 1, out, RunnerConfig(), meta={"tasks": "fixtures"}
        )
        passes[stage] = summary["pass_hat_k"]["1"]
    inject_payload(root / EVALS_DIR / "base" / TRACES, INJECTED_TASK)
    RunState(evals=passes, notes=["a note <b>not bold</b>"]).commit(root)
    metrics = MetricsLog(root, tensorboard=False)
    for step in range(1, 4):
        record = {"stage": "grpo", "round": 1, "step": step, "global_step": step}
        record |= {
            "rollout_reward_mean": 0.2 * step,
            "approx_kl": 0.01 * step,
            "entropy": 2.0 - 0.1 * step,
        }
        metrics.write(record, step)
    metrics.close()
    report = {"round": 1, "kind": "agentic", "steps": 3, "updates": 3, "rollout_reward_mean": 0.4}
    (root / ROUNDS_DIR / round_dir_name(1)).mkdir(parents=True)
    (root / ROUNDS_DIR / round_dir_name(1) / ROUND_REPORT).write_text(json.dumps(report))
    return root


@pytest.fixture(scope="session")
def page_data(run_dir: Path) -> PageData:
    return build_page_data(run_dir)
