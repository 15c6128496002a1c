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
    command = tau2.run_command(Path("tau2"), a_run(), Path("r"))
    assert "--num-tasks" not in command
    assert "--task-ids" not in command


def test_chosen_tasks_go_to_tau2_and_into_the_resume_record():
    command = tau2.run_command(Path("tau2"), a_run(task_ids=["2", "7"]), Path("r"))
    assert command[command.index("--task-ids") + 1 :][:2] == ["2", "7"]
    assert a_run(task_ids=["2"]).resume_record()["task_ids"] == ["2"]


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


def test_one_simulations_error_is_scored_zero_unless_asked_to_stop():
    assert "--skip-failed-samples" in tau2.run_command(Path("tau2"), a_run(), Path("r"))
    stopping = tau2.run_command(Path("tau2"), a_run(stop_on_error=True), Path("r"))
    assert "--skip-failed-samples" not in stopping
    # not a setting of the results: a resume may change it
    assert "stop_on_error" not in a_run().resume_record()


def skip_task_2(results_dir: Path) -> None:
    """Mark the sample's task 2, trial 1, as tau2 saves a simulation that raised."""
    path = tau2.simulations_path(results_dir)
    saved = json.loads(path.read_text())
    for sim in saved["simulations"]:
        if (sim["task_id"], sim["trial"]) == ("2", 1):
            sim.update(skipped=True, termination_reason="agent_error", messages=[])
            sim["reward_info"] = {"reward": 0.0}
    path.write_text(json.dumps(saved))


def test_the_report_names_each_failed_simulation_with_tau2s_logged_error(tmp_path):
    out = tmp_path / "out"
    results_dir = out / "tau2"
    shutil.copytree(SAMPLE, results_dir)
    skip_task_2(results_dir)
    (out / tau2.LOG_FILE).write_text(
        "\x1b[31m2026-12-02 14:02:11 | ERROR | Error running task 2, trial 1: boom\x1b[0m\n"
        "2026-12-02 14:02:11 | WARNING | tau2.run:_run:553 - Skipping failed sample 2, "
        "trial 1 with score 0.0. Error was: litellm.BadRequestError: OpenAIException - "
        "this conversation needs 8230 tokens, more than the model's context (8192)\n"
        "Traceback line that is not ours\n"
    )
    report = tau2.write_report(a_run(num_tasks=3, trials=2), out, results_dir, 1.0)
    assert [(f.task_id, f.trial) for f in report.failed] == [("2", 1)]
    assert report.failed[0].error.startswith("litellm.BadRequestError")
    assert "8192" in report.failed[0].error
    assert report.termination_reasons == {"user_stop": 5, "agent_error": 1}


def test_a_failed_simulation_without_a_log_line_is_still_counted(tmp_path):
    results_dir = tmp_path / "tau2"
    shutil.copytree(SAMPLE, results_dir)
    skip_task_2(results_dir)
    report = tau2.write_report(a_run(num_tasks=3, trials=2), tmp_path, results_dir, 1.0)
    assert [(f.task_id, f.error) for f in report.failed] == [("2", "not logged")]


def test_retrying_failed_simulations_deletes_only_them_from_tau2s_file(tmp_path):
    results_dir = tmp_path / "tau2"
    shutil.copytree(SAMPLE, results_dir)
    skip_task_2(results_dir)
    path = tau2.simulations_path(results_dir)
    assert tau2.drop_failed_simulations(path) == 1
    left = json.loads(path.read_text())["simulations"]
    assert sorted((s["task_id"], s["trial"]) for s in left) == [
        ("0", 0), ("0", 1), ("1", 0), ("1", 1), ("2", 0)
    ]  # fmt: skip
    assert tau2.drop_failed_simulations(path) == 0
