import json

import pytest
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.core.dataset import write_tasks
from agentwheel.core.messages import Completion
from agentwheel.envs.scripted import CautiousPolicy, OraclePolicy
from agentwheel.envs.user import ScriptedUser
from agentwheel.eval.evaluate import TRACES, ResumeMismatch, read_traces, run_eval
from agentwheel.settings.runner import RunnerConfig
from tests.envs.sample_tasks import ALL_KINDS, make_task

TASKS = [make_task(k) for k in ALL_KINDS]


class Interrupt(Exception):
    pass


def test_summary_reports_pass_hat_k_by_domain_and_branch(tmp_path):
    summary = run_eval(TASKS, CautiousPolicy(), ScriptedUser(), 2, tmp_path, RunnerConfig())
    assert summary["n_tasks"] == 5 and summary["n_episodes"] == 10
    assert summary["pass_hat_k"] == {"1": 0.4, "2": 0.4}
    assert summary["by_branch_kind"]["refuse"]["pass_hat_k"]["2"] == 1.0
    assert summary["by_branch_kind"]["happy"]["pass_hat_k"]["1"] == 0.0
    assert summary["by_domain"]["orders"]["n_tasks"] == 5
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["pass_hat_k"] == summary["pass_hat_k"]
    assert len(read_traces(tmp_path / TRACES).done) == 10


def test_interrupted_run_resumes_without_redoing_finished_episodes(tmp_path):
    seen = []

    def die_after_three(trajectory):
        seen.append(trajectory)
        if len(seen) == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_eval(
            TASKS,
            OraclePolicy(),
            ScriptedUser(),
            2,
            tmp_path,
            RunnerConfig(),
            on_episode=die_after_three,
        )
    assert len(read_traces(tmp_path / TRACES).done) == 3
    # A write torn by a kill leaves half a line; it is skipped and counted.
    with open(tmp_path / TRACES, "a") as handle:
        handle.write('{"task_id": "orders-happy", "tri')

    with pytest.raises(FileExistsError):
        run_eval(TASKS, OraclePolicy(), ScriptedUser(), 2, tmp_path, RunnerConfig())
    fresh = []
    summary = run_eval(
        TASKS,
        OraclePolicy(),
        ScriptedUser(),
        2,
        tmp_path,
        RunnerConfig(),
        resume=True,
        on_episode=fresh.append,
    )
    assert len(fresh) == 7 and summary["resumed_episodes"] == 3
    assert summary["corrupt_trace_lines"] == 1
    assert summary["skipped_trace_lines"][0].startswith(f"{tmp_path / TRACES}:4: ")
    assert summary["n_episodes"] == 10 and summary["pass_hat_k"]["2"] == 1.0
    keys = [(t.task_id, t.trial) for t in read_traces(tmp_path / TRACES).done]
    assert len(keys) == len(set(keys)) == 10


def test_resume_refuses_episodes_made_with_another_policy_or_backend(tmp_path):
    run_eval(TASKS, CautiousPolicy(), ScriptedUser(), 1, tmp_path, RunnerConfig(backend="mock"))
    with pytest.raises(ResumeMismatch, match="policy: 'cautious' on disk, 'oracle' now"):
        run_eval(
            TASKS,
            OraclePolicy(),
            ScriptedUser(),
            1,
            tmp_path,
            RunnerConfig(backend="mock"),
            resume=True,
        )
    with pytest.raises(ResumeMismatch, match="backend: 'mock' on disk, 'sqlite' now"):
        run_eval(
            TASKS,
            CautiousPolicy(),
            ScriptedUser(),
            1,
            tmp_path,
            RunnerConfig(backend="sqlite"),
            resume=True,
        )
    # Nothing on disk was touched by the refused resumes: the refuse run's episodes stand.
    assert len(read_traces(tmp_path / TRACES).done) == len(TASKS)
    same = run_eval(
        TASKS,
        CautiousPolicy(),
        ScriptedUser(),
        1,
        tmp_path,
        RunnerConfig(backend="mock"),
        resume=True,
    )
    assert same["resumed_episodes"] == len(TASKS) and same["pass_hat_k"]["1"] == 0.4


class FailingThenWorkingPolicy:
    """Fails every episode (as a policy behind a server outage would) until `up` is set."""

    name = "flaky"

    def __init__(self):
        self.up = False
        self.oracle = OraclePolicy()

    def act(self, views):
        if self.up:
            return self.oracle.act(views)
        return [Completion(finish_reason="error", error="connection refused") for _ in views]


def test_resume_runs_again_the_episodes_that_failed_during_an_outage(tmp_path):
    policy = FailingThenWorkingPolicy()
    down = run_eval(TASKS, policy, ScriptedUser(), 1, tmp_path, RunnerConfig())
    assert down["terminations"] == {"model_error": len(TASKS)}
    policy.up = True
    again = run_eval(TASKS, policy, ScriptedUser(), 1, tmp_path, RunnerConfig(), resume=True)
    assert again["resumed_episodes"] == 0
    assert again["retried_failed_episodes"] == len(TASKS)
    assert again["n_episodes"] == len(TASKS) and again["pass_hat_k"]["1"] == 1.0


def test_cli_eval_prints_table_and_reports_bad_lines(tmp_path):
    data = tmp_path / "tasks.jsonl"
    write_tasks(TASKS, data)
    with open(data, "a") as handle:
        handle.write("not json at all\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["eval", "--tasks", str(data), "--policy", "oracle", "-k", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "tasks.jsonl:6" in result.output and "invalid JSON" in result.output
    assert "pass^1" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pass_hat_k"]["1"] == 1.0 and len(summary["load_errors"]) == 1


def test_cli_gives_clear_errors_for_bad_specs(tmp_path):
    data = tmp_path / "tasks.jsonl"
    write_tasks(TASKS, data)
    bad_policy = CliRunner().invoke(
        app, ["eval", "--tasks", str(data), "--policy", "gpt", "--out", str(tmp_path / "a")]
    )
    assert bad_policy.exit_code == 1 and "unknown policy 'gpt'" in bad_policy.output
    missing = CliRunner().invoke(app, ["eval", "--tasks", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 1 and "no dataset at" in missing.output


def test_cli_eval_against_a_timing_out_server_counts_failures(tmp_path):
    from tests.llm.openai_server import OpenAITestServer, slow_reply, text_reply

    data = tmp_path / "tasks.jsonl"
    write_tasks(TASKS[:2], data)
    with OpenAITestServer(responder=lambda body: slow_reply(5.0, text_reply("late"))) as server:
        args = [
            "eval",
            "--tasks",
            str(data),
            "--policy",
            server.spec(),
            "--out",
            str(tmp_path / "run"),
        ]
        result = CliRunner().invoke(app, [*args, "--request-timeout", "0.2", "--max-retries", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["terminations"] == {"model_error": 2}
    assert summary["pass_hat_k"]["1"] == 0.0
    assert "model_error" in result.output


def test_cli_eval_with_a_bad_key_says_so_and_keeps_nothing_half_written(tmp_path, monkeypatch):
    from tests.llm.openai_server import OpenAITestServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key")
    data = tmp_path / "tasks.jsonl"
    write_tasks(TASKS[:2], data)
    with OpenAITestServer(api_key="sk-right-key") as server:
        result = CliRunner().invoke(
            app,
            [
                "eval",
                "--tasks",
                str(data),
                "--policy",
                server.spec(),
                "--out",
                str(tmp_path / "run"),
            ],
        )
    assert result.exit_code == 1
    assert "401" in result.output or "auth" in result.output.lower()
    assert "sk-wrong-key" not in result.output
    assert "--resume" in result.output
