"""`evolve analysis`: harder variants of analysis questions (a date window, a join hop, a
NULL trap, 'not in the data', a year left to ask for), each kept only if the gate passes
it: the oracle passes, the shortcuts fail."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.core.dataset import load_tasks
from agentwheel.envs.tables import load_tables
from agentwheel.flywheels.industrial.analysis_evolve import (
    OPERATORS,
    draft_of,
    evolve_analysis,
    harder_analysis_variants,
)
from tests.flywheels.industrial.scripted_runs import pass_rate


@pytest.fixture(scope="module")
def parents():
    return load_tasks("analysis-fixtures").tasks


@pytest.fixture(scope="module")
def evolved(parents):
    kept, rejected = evolve_analysis(parents, round_=2)
    return kept, rejected


def test_most_questions_come_back_harder_by_every_operator(parents, evolved):
    kept, _ = evolved
    assert len(kept) >= 24
    assert len({t.lineage.parent_id for t in kept}) == len(kept)  # one variant per parent
    operators = Counter(t.lineage.operator for t in kept)
    assert set(operators) == {f"harder:{name}" for name in OPERATORS}
    assert all(t.lineage.round == 2 for t in kept)


def test_the_variants_pass_the_gate(evolved):
    kept, _ = evolved
    assert pass_rate("oracle", kept) == 1.0
    assert pass_rate("blind", kept) == 0.0
    assert pass_rate("distractor", kept) == 0.0
    ambiguous = [t for t in kept if t.evaluation.required_signals == ["clarification"]]
    assert ambiguous and pass_rate("guess", ambiguous) == 0.0


def test_each_operator_adds_the_condition_it_names(parents, evolved):
    kept, _ = evolved
    by_id = {t.id: t for t in parents}
    for task in kept:
        parent = by_id[task.lineage.parent_id]
        gold, trap = task.analysis.gold_sql, task.hack_path[0].arguments["query"]
        operator = task.lineage.operator.removeprefix("harder:")
        if operator != "clarify":
            assert task.user.request.startswith(parent.user.request)
            assert len(task.user.request) > len(parent.user.request)
        if operator == "date_window":
            assert "year(" not in parent.analysis.gold_sql and "year(" in gold
        elif operator == "filter_hop":
            assert "customers" not in parent.analysis.gold_sql and "JOIN customers" in gold
        elif operator == "null_trap":
            assert "IS DISTINCT FROM" in gold and "<>" in trap and "IS DISTINCT" not in trap
        elif operator == "not_in_data":
            assert task.evaluation.answer.kind == "absent" and trap == parent.analysis.gold_sql
        else:
            year = task.user.known_facts["reporting_year"]
            assert year in parent.user.request and year not in task.user.request


def test_a_variant_rebuilds_its_parent_draft(parents):
    tables = load_tables("shop")
    parent = next(t for t in parents if t.lineage.branch == "status_count_month")
    draft = draft_of(parent)
    assert draft.gold_sql == parent.analysis.gold_sql and draft.kind == "number"
    names = [
        v.lineage.operator for v in harder_analysis_variants(parent, tables, 1, list(OPERATORS))
    ]
    # Dated already, no customers joined: no second window, no segment to trap.
    assert names == ["harder:filter_hop", "harder:not_in_data", "harder:clarify"]


def test_unknown_operators_are_refused(parents):
    with pytest.raises(ValueError, match="operators must be among"):
        evolve_analysis(parents[:2], operators=["deepen"])


def test_evolve_analysis_cli_reads_an_eval_run(tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    args = ["eval", "--tasks", "analysis-fixtures", "--policy", "blind", "--no-validate"]
    result = runner.invoke(app, [*args, "--limit", "8", "--out", str(run)])
    assert result.exit_code == 0, result.output
    base = ["evolve", "analysis", "--tasks", "analysis-fixtures", "--run", str(run)]
    out = tmp_path / "harder"
    result = runner.invoke(app, [*base, "--out", str(out), "--round", "2"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "tasks.jsonl").read_text().splitlines()]
    assert len(lines) >= 6 and all(t["lineage"]["round"] == 2 for t in lines)
    # The blind policy passed nothing: there is no passed task to make harder.
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "p"), "--parents", "passed"])
    assert result.exit_code == 1 and "no passed analysis tasks" in result.output
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "x"), "--operators", "deepen"])
    assert result.exit_code == 1 and "unknown operators ['deepen']" in result.output
