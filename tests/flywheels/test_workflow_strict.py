"""Strict loading: each mistake a new author makes is an error naming the file, the field
path, what was expected and how to fix it (issue #14's list, one test each)."""

from __future__ import annotations

import random
import re

import pytest
import yaml

from agentwheel.flywheels.agentic.workflow import ColumnGen
from agentwheel.flywheels.agentic.workflow_loader import (
    BUNDLED_WORKFLOWS,
    WorkflowError,
    load_workflow,
    load_workflows,
)
from agentwheel.flywheels.agentic.world import candidates, make_faker
from tests.flywheels.small_workflow import small_data

ON_LOAN = ("steps", 0, "preconditions", 0)
RENEWALS = ("steps", 0, "preconditions", 1)


def pre(data, where):
    node = data
    for key in where:
        node = node[key]
    return node


def error_for(tmp_path, data, text: str | None = None) -> WorkflowError:
    path = tmp_path / "wf.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    assert info.value.file == str(path) and str(path) in str(info.value)
    return info.value


# ---- thresholds escape the column's values -------------------------------------------


def test_a_typo_in_a_choice_value_is_an_error(tmp_path):
    data = small_data()
    pre(data, ON_LOAN)["value"] = "onloan"
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.0.value"
    assert "'onloan' is not a value of loans.status" in error.message
    assert "['on_loan', 'returned', 'lost']" in error.message


def test_a_wrongly_cased_choice_value_gets_a_suggestion(tmp_path):
    data = small_data()
    pre(data, ON_LOAN)["value"] = "On_Loan"
    assert "did you mean 'on_loan'?" in error_for(tmp_path, data).message


def test_a_typo_inside_an_in_list_names_the_item(tmp_path):
    data = small_data()
    pre(data, ON_LOAN).update(op="in", value=["on_loan", "lsot"])
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.0.value.1"
    assert "'lsot'" in error.message


def test_a_threshold_outside_the_numeric_range_is_an_error(tmp_path):
    # renewals: int [0, 4]; 5000 would put 5000 and 4999 into the data.
    data = small_data()
    pre(data, RENEWALS)["value"] = 5000
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.1.value"
    assert "outside" in error.message and "from 0 to 4" in error.message
    assert "widen the generator" in error.message


def test_a_quoted_number_threshold_is_an_error(tmp_path):
    data = small_data()
    pre(data, RENEWALS)["value"] = "2"
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.1.value"
    assert "not a number" in error.message


def test_threshold_neighbours_stay_inside_the_generator():
    # `choice [1..6, 12]` with a threshold of 6 used to yield 7; int [0, 4] at 4 yielded 5.
    rng, fake = random.Random(0), make_faker(0)
    nights = ColumnGen(choice=[1, 2, 3, 4, 5, 6, 12])
    _, edges = candidates(nights, [6], rng, fake, {})
    assert set(edges) == {5, 6}
    renewals = ColumnGen.model_validate({"int": [0, 4]})
    _, edges = candidates(renewals, [4, 0], rng, fake, {})
    assert set(edges) == {0, 1, 3, 4}


def test_tasks_of_a_threshold_at_the_range_end_hold_only_generated_values(tmp_path):
    from agentwheel.flywheels.agentic.synth import synth_agentic

    data = small_data()
    data["tables"]["loans"]["columns"]["renewals"] = {"choice": [0, 1, 2, 3, 12]}
    pre(data, RENEWALS).update(op="le", value=3)
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    manifest = synth_agentic(tmp_path / "out", path, tasks_per_workflow=30)
    assert manifest.tasks > 10
    from agentwheel.core.dataset import load_tasks

    seen = set()
    for task in load_tasks(tmp_path / "out").tasks:
        assert task.sqlite is not None
        loans = task.sqlite.tables["loans"]
        column = loans.columns.index("renewals")
        seen |= {row[column] for row in loans.rows}
    assert seen <= {0, 1, 2, 3, 12} and 3 in seen


# ---- silent mistakes ---------------------------------------------------------------


def test_unquoted_no_is_caught_as_a_yaml_boolean(tmp_path):
    data = small_data()
    data["tables"]["loans"]["columns"]["status"] = {"choice": ["yes", "no"]}
    pre(data, ON_LOAN)["value"] = yaml.safe_load("no")  # what `value: no` reads as
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.0.value"
    assert "boolean false" in error.message and 'quote it ("no")' in error.message


def test_unquoted_yes_no_in_a_choice_list_is_caught(tmp_path):
    data = small_data()
    text = yaml.safe_dump(data, sort_keys=False).replace(
        "- on_loan\n", "- yes\n", 1
    )  # the choice list of loans.status
    error = error_for(tmp_path, data, text)
    assert error.field == "tables.loans.columns.status.choice.0"
    assert "boolean true" in error.message


def test_a_non_iso_date_threshold_is_an_error(tmp_path):
    data = small_data()
    data["tables"]["loans"]["columns"]["due"] = {"date": ["2025-01-01", "2025-12-31"]}
    data["steps"][0]["preconditions"].append(
        {"id": "due_soon", "field": "due", "op": "ge", "value": "06/15/2025", "rule": "Due."}
    )
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.2.value"
    assert "not an ISO date" in error.message and "YYYY-MM-DD" in error.message


def test_an_unquoted_iso_date_is_read_as_the_date_string(tmp_path):
    # YAML reads 2025-06-16 as a date object; the loader takes it as the ISO string.
    data = small_data()
    data["tables"]["loans"]["columns"]["due"] = {"date": ["2025-01-01", "2025-12-31"]}
    data["steps"][0]["optional_preconditions"].append(
        {"id": "due_later", "field": "due", "op": "ge", "value": "2025-06-16", "rule": "Due."}
    )
    text = yaml.safe_dump(data, sort_keys=False).replace("'2025-06-16'", "2025-06-16")
    assert "value: 2025-06-16\n" in text
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    wf = load_workflow(path)
    assert wf.steps[0].optional_preconditions[1].value == "2025-06-16"


def test_a_date_threshold_outside_the_generated_dates_is_an_error(tmp_path):
    data = small_data()
    data["tables"]["loans"]["columns"]["due"] = {"date": ["2025-01-01", "2025-12-31"]}
    data["steps"][0]["preconditions"].append(
        {"id": "due_soon", "field": "due", "op": "ge", "value": "2031-01-01", "rule": "Due."}
    )
    assert "outside" in error_for(tmp_path, data).message


# ---- claims split at commas --------------------------------------------------------


def test_a_claim_split_at_a_comma_is_an_error_with_the_quoted_fix(tmp_path):
    data = small_data()
    pre(data, RENEWALS)["false_claims"] = yaml.safe_load(
        "[My limit was raised to $5,000 last month.]"
    )
    assert pre(data, RENEWALS)["false_claims"] == ["My limit was raised to $5", "000 last month."]
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.1.false_claims.0"
    assert "pieces of one sentence" in error.message
    assert 'quote it: ["My limit was raised to $5,000 last month."]' in error.message


def test_a_claim_that_is_not_a_sentence_is_an_error(tmp_path):
    data = small_data()
    pre(data, RENEWALS)["false_claims"] = ["never renewed it"]
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.1.false_claims.0"
    assert "not a sentence" in error.message


def test_bundled_claims_are_whole_sentences():
    # Read as raw YAML, independent of the loader: the 35 flow-list claims split at
    # commas (e.g. banking_transfer's "000 last month.") fail here.
    for path in sorted(BUNDLED_WORKFLOWS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        for step in data["steps"]:
            for group in ("preconditions", "optional_preconditions"):
                for rule in step.get(group, []):
                    for claim in rule.get("false_claims", []):
                        assert re.match(r"^[A-Z\"'{]", claim), (path.name, claim)
                        assert re.search(r"[.!?][\"']?$", claim), (path.name, claim)


def test_the_old_bundled_banking_claims_are_rejected(tmp_path):
    text = (BUNDLED_WORKFLOWS / "banking_transfer.yaml").read_text()
    old = text.replace(
        'false_claims: ["My limit was raised to $5,000 last month."]',
        "false_claims: [My limit was raised to $5,000 last month.]",
    )
    assert old != text
    error = error_for(tmp_path, None, old)
    assert error.field == "steps.0.preconditions.2.false_claims.0"


# ---- misleading messages -----------------------------------------------------------


def test_op_in_with_value_from_gets_the_real_message_alone(tmp_path):
    data = small_data()
    pre(data, RENEWALS).update(op="in", value_from="loans.days_overdue")
    del pre(data, RENEWALS)["value"]
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.1.value_from"
    assert "literal list" in error.message and "value: [a, b" in error.message
    assert error.problems == [(error.field, error.message)]  # nothing hidden behind "+1 more"


def test_a_step_missing_its_entity_says_so(tmp_path):
    data = small_data()
    del data["steps"][0]["entity"]
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.0.field"
    assert "has no entity" in error.message and "entity: <table>" in error.message


def test_every_problem_is_listed_not_counted(tmp_path):
    data = small_data()
    pre(data, ON_LOAN)["value"] = "onloan"
    pre(data, RENEWALS)["value"] = 5000
    error = error_for(tmp_path, data)
    assert [f for f, _ in error.problems] == [
        "steps.0.preconditions.0.value",
        "steps.0.preconditions.1.value",
    ]
    assert "more)" not in str(error)
    assert str(error).count(str(tmp_path / "wf.yaml")) == 2


def test_load_workflows_keeps_every_problem_in_the_rejection(tmp_path):
    data = small_data()
    pre(data, ON_LOAN)["value"] = "onloan"
    pre(data, RENEWALS)["value"] = 5000
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    _, [rejection] = load_workflows(tmp_path)
    assert rejection.field == "steps.0.preconditions.0.value"
    assert "steps.0.preconditions.1.value: " in rejection.detail
