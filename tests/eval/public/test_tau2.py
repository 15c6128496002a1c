"""`agentwheel bench tau2` without the heavy virtualenv: the command tau2 is driven with,
and its files read back (a sample saved from a real tau2 run, `samples/tau2/`: airline
tasks 0-2, two trials each, a scripted server as agent (it only greets) and user (it stops
at once); tasks 0 and 1 expect no change to the database, so doing nothing passes them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentwheel.eval.public import tau2

SAMPLE = Path(__file__).parent / "samples" / "tau2"


def a_run(**fields) -> tau2.Tau2Run:
    agent = tau2.ModelEndpoint(model="agentwheel-policy", base_url="http://127.0.0.1:8001/v1")
    user = tau2.ModelEndpoint(
        model="qwen3-8b", base_url="http://127.0.0.1:8002/v1", api_key="k", max_tokens=64
    )
    return tau2.Tau2Run(agent=agent, user=user, **fields)


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_both_models_go_through_litellms_openai_provider(tmp_path):
    run = a_run(domain="retail", num_tasks=3, trials=4)
    command = tau2.run_command(Path("/venv/bin/tau2"), run, tmp_path / "results")
    assert command[:2] == ["/venv/bin/tau2", "run"]
    assert option(command, "--agent-llm") == "openai/agentwheel-policy"
    assert option(command, "--user-llm") == "openai/qwen3-8b"
    assert json.loads(option(command, "--agent-llm-args")) == {
        "api_base": "http://127.0.0.1:8001/v1",
        "temperature": 0.0,
    }
    assert json.loads(option(command, "--user-llm-args"))["max_tokens"] == 64
    assert option(command, "--domain") == "retail"
    assert option(command, "--num-tasks") == "3"
    assert option(command, "--num-trials") == "4"
    # results go where the report looks for them, under a fixed name so a rerun resumes
    assert option(command, "--results-dir") == str((tmp_path / "results").resolve())
    assert option(command, "--save-to") == tau2.RUN_NAME


def test_keys_travel_in_named_variables_and_litellm_starts_offline():
    run = a_run()
    command = tau2.run_command(Path("tau2"), run, Path("r"))
    env = tau2.tool_environment(run)
    assert env[option(command, "--agent-api-key")] == "EMPTY"
    assert env[option(command, "--user-api-key")] == "k"
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"


def test_all_tasks_when_no_count_is_given():
    assert "--num-tasks" not in tau2.run_command(Path("tau2"), a_run(), Path("r"))


def test_the_report_reads_tau2s_own_files(tmp_path):
    results_dir = tmp_path / "out" / "tau2"
    shutil.copytree(SAMPLE, results_dir)
    report = tau2.write_report(a_run(num_tasks=3, trials=2), tmp_path / "out", results_dir, 12.0)
    assert report.domain == "airline"
    assert (report.num_tasks, report.trials, report.simulations) == (3, 2, 6)
    assert report.task_rewards == {"0": [1.0, 1.0], "1": [1.0, 1.0], "2": [0.0, 0.0]}
    assert report.pass_hat_k == pytest.approx({1: 2 / 3, 2: 2 / 3})
    assert report.pass_hat_k_recomputed == pytest.approx(report.pass_hat_k)
    assert report.termination_reasons == {"user_stop": 6}
    saved = json.loads((tmp_path / "out" / tau2.REPORT_FILE).read_text())
    assert saved["pass_hat_k"] == {str(k): v for k, v in report.pass_hat_k.items()}


def test_missing_results_are_a_clear_error(tmp_path):
    with pytest.raises(tau2.Tau2ResultsMissing, match=r"tau2 wrote no tau2\.json"):
        tau2.write_report(a_run(), tmp_path, tmp_path, 1.0)


def test_pass_hat_k_from_mixed_trials():
    simulations = [
        {"task_id": "7", "trial": 1, "reward_info": {"reward": 0.0}},
        {"task_id": "7", "trial": 0, "reward_info": {"reward": 1.0}},
        {"task_id": "3", "trial": 0, "reward_info": {"reward": 1.0}},
        {"task_id": "3", "trial": 1, "reward_info": None},  # crashed: scores 0
    ]
    rewards = tau2.task_rewards(simulations)
    assert rewards == {"3": [1.0, 0.0], "7": [1.0, 0.0]}
    assert [tau2.is_success(r) for r in (1.0, 0.9999999, 0.5)] == [True, True, False]


def test_a_resume_may_move_servers_but_not_change_settings(tmp_path):
    first = a_run(num_tasks=2, trials=2)
    tau2.check_resumable(first, tmp_path, resuming=False)
    moved = first.model_copy(
        update={"agent": first.agent.model_copy(update={"base_url": "http://127.0.0.1:9/v1"})}
    )
    tau2.check_resumable(moved, tmp_path, resuming=True)  # same settings: resumes
    with pytest.raises(tau2.Tau2RunChanged, match="trials: 2 on disk, 3 now"):
        tau2.check_resumable(first.model_copy(update={"trials": 3}), tmp_path, resuming=True)
    # tau2 keeps the first run's task list, so more tasks cannot be a resume
    with pytest.raises(tau2.Tau2RunChanged, match="num_tasks: 2 on disk, 5 now"):
        tau2.check_resumable(first.model_copy(update={"num_tasks": 5}), tmp_path, resuming=True)
