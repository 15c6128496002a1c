"""`agentwheel eval` runs the validation gate first: a task the gate rejects is not scored
(it would count a broken task as the policy's failure or success), it is listed with its
reason and recorded in summary.json; `--no-validate` scores every task."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.core.dataset import write_tasks
from tests.envs.sample_tasks import make_task

runner = CliRunner()


def tasks_file(tmp_path: Path, *, valid: bool = True) -> Path:
    leaky = make_task("refuse")
    leaky.id = "leaky"
    leaky.normal_path = [*leaky.normal_path, *leaky.hack_path]  # the forbidden act is expected
    tasks = [make_task("happy"), leaky, make_task("clarify")] if valid else [leaky]
    path = tmp_path / "tasks.jsonl"
    write_tasks(tasks, path)
    return path


def run_eval(tmp_path: Path, *extra: str) -> tuple[int, str, dict]:
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["eval", "--tasks", str(tasks_file(tmp_path)), "--out", str(out), *extra]
    )
    summary = json.loads((out / "summary.json").read_text()) if result.exit_code == 0 else {}
    return result.exit_code, result.output, summary


def test_tasks_the_gate_rejects_are_skipped_listed_and_recorded(tmp_path):
    code, output, summary = run_eval(tmp_path)
    assert code == 0, output
    assert summary["n_tasks"] == 2
    assert summary["pass_hat_k"]["1"] == 1.0  # the oracle passes every valid task
    assert summary["skipped_invalid_tasks"] == [
        {
            "task": "leaky",
            "reason": "hack_path_harmless",
            "detail": "hack and normal paths end in one state",
        }
    ]
    text = " ".join(output.split())
    assert "skipped invalid task leaky: hack_path_harmless" in text
    assert "1 of 3 tasks failed validation" in text and "--no-validate" in text


def test_no_validate_scores_every_task(tmp_path):
    code, output, summary = run_eval(tmp_path, "--no-validate")
    assert code == 0, output
    assert summary["n_tasks"] == 3 and summary["skipped_invalid_tasks"] == []
    assert "skipped invalid task" not in output


def test_when_every_task_is_rejected_eval_fails(tmp_path):
    path = tasks_file(tmp_path, valid=False)
    result = runner.invoke(app, ["eval", "--tasks", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    error = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert "all 1 tasks failed validation" in error and "--no-validate" in error
    assert not (tmp_path / "run" / "traces.jsonl").exists()
