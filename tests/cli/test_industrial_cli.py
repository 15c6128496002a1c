"""The industrial fixtures through the command line: the oracle scores 1, both shortcuts
(answer without looking; answer from the distractor) score 0, and the summary carries
the cost report; `synth search|analysis` writes validated tasks that eval reads back."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agentwheel.cli import app

runner = CliRunner()


def _eval(tmp_path, tasks: str, policy: str, *extra: str) -> dict:
    out = tmp_path / f"{tasks}-{policy}"
    command = ["eval", "--tasks", tasks, "--policy", policy, "--out", str(out), *extra]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("tasks", ["search-fixtures", "analysis-fixtures"])
def test_fixtures_score_one_for_the_oracle_and_zero_for_the_shortcuts(tmp_path, tasks):
    oracle = _eval(tmp_path, tasks, "oracle")
    assert oracle["pass_hat_k"]["1"] == 1.0 and oracle["n_tasks"] >= 20
    assert oracle["skipped_invalid_tasks"] == []
    cost = oracle["cost"]
    assert cost["answer_with_evidence_rate"] == 1.0 and cost["success_ci95"] == [1.0, 1.0]
    assert cost["tool_calls"]["median"] >= 3
    for shortcut in ("blind", "distractor"):
        summary = _eval(tmp_path, tasks, shortcut, "--no-validate")  # the oracle run gated them
        assert summary["pass_hat_k"]["1"] == 0.0
    assert summary["cost"]["answer_correct_rate"] == 0.0  # the distractor's answers are wrong


def test_synth_then_eval(tmp_path):
    out = tmp_path / "synth"
    result = runner.invoke(
        app, ["synth", "analysis", "--out", str(out), "--count", "9", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tasks"] == 9 and manifest["kind"] == "analysis"
    summary = _eval(tmp_path, str(out), "oracle")
    assert summary["pass_hat_k"]["1"] == 1.0 and summary["n_tasks"] == 9


def test_synth_search_refuses_a_too_small_collection(tmp_path):
    result = runner.invoke(app, ["synth", "search", "--out", str(tmp_path / "s"), "--docs", "10"])
    assert result.exit_code != 0
