"""Two evals of the same tasks compared: the oracle against the look-up-then-decline floor
on the fixtures (pass counts known per branch kind), an eval against itself, and the
errors and the CLI."""

import json

import pytest
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.core.dataset import load_tasks
from agentwheel.envs.scripted import SCRIPTED_POLICIES
from agentwheel.envs.user import ScriptedUser
from agentwheel.eval.evaluate import TRACES, run_eval
from agentwheel.eval.two_evals import EvalsError, compare_evals
from agentwheel.settings.runner import RunnerConfig

TASKS = load_tasks("fixtures").tasks


@pytest.fixture(scope="module")
def evals(tmp_path_factory):
    root = tmp_path_factory.mktemp("evals")
    for name in ("oracle", "cautious"):
        policy = SCRIPTED_POLICIES[name]()
        run_eval(TASKS, policy, ScriptedUser(), 1, root / name, RunnerConfig(), meta={})
    return root


def test_the_look_up_then_decline_floor_against_the_oracle_loses_every_task_to_be_done(evals):
    result = compare_evals(evals / "oracle", evals / "cautious", resamples=2000)
    kinds = {t.branch_kind for t in TASKS}
    declined = sum(t.branch_kind in ("refuse", "adversarial") for t in TASKS)
    assert result.tasks == len(TASKS) and result.only_in_a == result.only_in_b == 0
    assert (result.passed_a, result.passed_b) == (len(TASKS), declined)
    assert result.pass1_a == 1.0 and result.pass1_b == pytest.approx(declined / len(TASKS), 1e-3)
    assert result.passed_only_a == len(TASKS) - declined and result.passed_only_b == 0
    assert result.diff.mean == pytest.approx(result.pass1_b - 1.0, abs=1e-4)
    assert result.diff.ci95[1] < 0  # a loss on most tasks, none gained
    assert set(result.by_kind) == kinds
    for kind, counts in result.by_kind.items():
        assert counts.passed_a == counts.tasks
        assert counts.passed_b == (counts.tasks if kind in ("refuse", "adversarial") else 0)
    # on the tasks to be declined the floor's episode is the oracle's, message for message
    assert result.identical_episodes == declined


def test_an_eval_against_itself_is_identical_with_a_zero_difference(evals):
    result = compare_evals(evals / "oracle", evals / "oracle" / TRACES)
    assert result.identical_episodes == result.tasks == len(TASKS)
    assert result.diff.mean == 0 and result.diff.ci95 == (0.0, 0.0)


def test_tasks_in_one_eval_only_are_left_out_and_counted(evals, tmp_path):
    lines = (evals / "cautious" / TRACES).read_text().splitlines()
    (tmp_path / TRACES).write_text("\n".join(lines[:5]) + "\n")
    result = compare_evals(evals / "oracle", tmp_path)
    assert result.tasks == 5 and result.only_in_a == len(TASKS) - 5 and result.only_in_b == 0


def test_what_cannot_be_compared_says_why(evals, tmp_path):
    with pytest.raises(EvalsError, match=r"no traces\.jsonl"):
        compare_evals(evals / "oracle", tmp_path)
    (tmp_path / TRACES).write_text("")
    with pytest.raises(EvalsError, match="no finished episode"):
        compare_evals(evals / "oracle", tmp_path)


def test_the_cli_prints_the_difference_and_writes_json(evals, tmp_path):
    out = tmp_path / "cmp.json"
    runner = CliRunner()
    args = ["compare", str(evals / "oracle"), str(evals / "cautious"), "--json", str(out)]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "B - A: -" in result.output and "paired 95% interval" in result.output
    saved = json.loads(out.read_text())
    assert saved["tasks"] == len(TASKS) and saved["pass1_a"] == 1.0
    missing = runner.invoke(app, ["compare", str(evals / "oracle"), str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "no traces.jsonl" in missing.output
