"""Mistakes that used to load silently or with a misleading message (issue #25's list):
each is now an error naming the field path, what is wrong and the fix, or, for extra
tools no task has room for, a warning that `validate --workflows` and `synth` both give."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.core.dataset import load_tasks
from agentwheel.flywheels.agentic.synth import synth_agentic
from agentwheel.flywheels.agentic.validate import validate_tasks
from agentwheel.flywheels.agentic.workflow_loader import (
    BUNDLED_WORKFLOWS,
    WorkflowError,
    load_workflow,
    parse_workflow,
    workflow_warnings,
)
from tests.flywheels.small_workflow import small_data

CAR = BUNDLED_WORKFLOWS / "car_rental_change.yaml"
HOTEL = BUNDLED_WORKFLOWS / "hotel_booking.yaml"


def car() -> dict[str, Any]:
    return yaml.safe_load(CAR.read_text())


def hotel() -> dict[str, Any]:
    return yaml.safe_load(HOTEL.read_text())


def error_of(data: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(WorkflowError) as info:
        parse_workflow(data, "wf.yaml")
    return info.value.field, info.value.message


def test_a_transfer_rule_whose_text_says_decline_is_an_error():
    data = car()
    rule = data["steps"][1]["preconditions"][0]
    rule["rule"] = "Rentals of commercial vehicles cannot be changed: decline the request."
    field, message = error_of(data)
    assert field == "steps.1.preconditions.0.rule"
    assert "'decline'" in message and "on_fail: transfer" in message
    rule["rule"] = "Rentals of commercial vehicles are not changed by this assistant."
    field, message = error_of(data)
    assert "never says to transfer" in message


def test_a_related_rule_on_a_step_that_lists_another_table_is_an_error():
    data = hotel()
    data["steps"][1]["tool"]["sql"] = [
        "SELECT guest_id, name, standing FROM guests WHERE guest_id = :guest_id"
    ]
    field, message = error_of(data)
    assert field == "steps.1.preconditions.0.related.table"
    assert "lists ['guests'], not bookings" in message


def test_a_related_rule_on_a_listing_that_requires_rows_is_an_error():
    data = hotel()
    del data["steps"][1]["tool"]["require_rows"]
    field, message = error_of(data)
    assert field == "steps.1.tool.require_rows"
    assert "`require_rows: false`" in message


def test_a_related_rule_on_a_listing_without_its_columns_is_an_error():
    data = hotel()
    data["steps"][1]["tool"]["sql"] = [
        "SELECT booking_id, nights FROM bookings WHERE guest_id = :guest_id"
    ]
    field, message = error_of(data)
    assert field == "steps.1.tool.sql"
    assert "['guest_id', 'check_in', 'status']" in message


def test_a_rule_value_a_map_never_gives_is_an_error():
    data = car()
    data["steps"][1]["preconditions"][0]["value"] = "comercial"
    field, message = error_of(data)
    assert field == "steps.1.preconditions.0.value"
    assert "'comercial' is not a value of vehicles.vehicle_class" in message
    assert "'commercial'" in message and "as the map spells it" in message


def test_a_sets_when_value_the_column_never_takes_is_an_error():
    data = car()
    data["tables"]["rentals"]["sets"][0]["when"] = {"status": "Active"}
    field, message = error_of(data)
    assert field == "tables.rentals.sets.0.when.status"
    assert "'Active' is not a value of rentals.status" in message
    assert "never fires" in message


def test_a_typo_in_a_facts_field_is_named_not_blamed_on_the_phrasing():
    data = hotel()
    data["facts"][0]["field"] = "request.check_inn"
    field, message = error_of(data)
    assert field == "facts.0.field"
    assert "unknown field 'request.check_inn'" in message and "request.check_in" in message


def test_a_ref_to_a_table_that_does_not_exist_names_the_tables():
    data = small_data()
    data["tables"]["loans"]["columns"]["member_id"] = {"ref": "memberz.member_id"}
    field, message = error_of(data)
    assert field == "tables.loans.columns.member_id.ref"
    assert "no table 'memberz' (tables: members, loans, renewal_log)" in message


def test_an_unknown_faker_provider_lists_the_allowed_ones():
    data = small_data()
    data["tables"]["members"]["columns"]["name"] = {"faker": "full_name"}
    field, message = error_of(data)
    assert field == "tables.members.columns.name.faker"
    assert "use one of address, bban" in message and "name, phone_number" in message


def test_an_identifier_on_a_request_detail_points_to_facts():
    data = hotel()
    data["identifiers"][0]["field"] = "request.check_in"
    field, message = error_of(data)
    assert field == "identifiers.0.field"
    assert "request detail" in message and "`facts`" in message


def test_a_text_yaml_read_as_a_mapping_says_why():
    data = small_data()
    data["phrasing"]["intents"][0] = yaml.safe_load("- {loans.title}")[0]
    field, message = error_of(data)
    assert field == "phrasing.intents.0"
    assert "YAML read this as a mapping" in message and "quote the whole text" in message


def test_an_unquoted_placeholder_in_a_flow_list_says_to_quote_it(tmp_path):
    text = yaml.safe_dump(small_data(), sort_keys=False)
    intents = "  intents:\n  - renew my loan\n  - renew {loans.title}\n  - keep {loans.title} a bit longer\n"
    assert intents in text
    bad = text.replace(intents, "  intents: [renew my loan, renew {loans.title}, keep it]\n")
    path = tmp_path / "wf.yaml"
    path.write_text(bad)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    assert info.value.field.startswith("line ")
    assert "quote each text that holds one" in info.value.message
    assert "while parsing" not in info.value.message


def test_a_tool_that_differs_from_its_namesake_says_how(tmp_path):
    data = car()
    shared = data["intents"][0]["steps"][0]
    shared["tool"] = {**shared["tool"], "description": "Another description."}
    field, message = error_of(data)
    assert field == "intents.0.steps.0.tool"
    assert "differs in ['description']" in message and "steps.0.tool" in message


def test_crowded_out_extra_tools_are_a_warning_in_validate_and_synth(tmp_path):
    result = CliRunner().invoke(app, ["validate", "--workflows", str(CAR)])
    assert result.exit_code == 0
    assert "warning car_rental_change: extra_tools: ['list_customer_rentals'] never" in (
        " ".join(result.output.split())
    )
    manifest = synth_agentic(tmp_path, [CAR], tasks_per_workflow=5)
    written = json.loads(Path(tmp_path / "manifest.json").read_text())
    assert manifest.warnings == written["warnings"]
    assert len(written["warnings"]) == 1
    assert "['list_customer_rentals'] never appear in any task" in written["warnings"][0]


def test_exist_true_is_read_as_the_flag_not_as_a_stray_boolean():
    # `exist: true` is the documented way to require a related row; it was rejected as
    # "YAML reads an unquoted yes/on/true as the boolean true".
    data = hotel()
    data["steps"][1]["preconditions"][0]["related"]["exist"] = True
    data["steps"][1]["preconditions"][0]["related"]["where"] = {"status": "cancelled"}
    wf = parse_workflow(data, "wf.yaml")
    related = wf.steps[1].preconditions[0].related
    assert related is not None and related.exist is True


# ---- the tool cap: an intent's tools may count only in its own tasks -------------------


def car_with_a_drivers_listing(tools: str) -> dict[str, Any]:
    """car_rental_change with a third step for add_driver: 5 step tools across intents."""
    data = car()
    listing = {
        "id": "list_drivers",
        "tool": {
            "name": "list_rental_drivers",
            "description": "List the extra drivers on a rental.",
            "kind": "query",
            "params": {"rental_id": "string"},
            "sql": ["SELECT rental_id, name FROM drivers WHERE rental_id = :rental_id"],
            "require_rows": False,
        },
        "args": {"rental_id": "rentals.rental_id"},
    }
    data["intents"][0]["steps"].insert(1, listing)
    data["other_intent_tools"] = tools
    return data


def test_intent_tools_that_count_only_in_their_own_tasks_make_room(tmp_path):
    field, message = error_of(car_with_a_drivers_listing("always"))
    assert field == "intents" and "`other_intent_tools: when_room`" in message
    wf = parse_workflow(car_with_a_drivers_listing("when_room"), "car.yaml")
    assert workflow_warnings(wf) == []
    manifest = synth_agentic(tmp_path, [wf], tasks_per_workflow=30)
    assert manifest.tasks == 30 and manifest.warnings == []
    tasks = load_tasks(tmp_path).tasks
    names = [{t.name for t in task.tools} for task in tasks]
    assert all(3 <= len(n) <= 5 for n in names)
    assert any("list_customer_rentals" in n for n in names)  # the extra tool now appears
    add = [
        n for n, t in zip(names, tasks, strict=True) if t.lineage.branch.startswith("add_driver.")
    ]
    extend = [
        n for n, t in zip(names, tasks, strict=True) if not t.lineage.branch.startswith("add_")
    ]
    assert all("list_rental_drivers" not in n for n in extend)  # an intent's own tool
    assert any("add_driver" in n for n in extend) and any("add_driver" not in n for n in extend)
    assert all("list_rental_drivers" in n for n in add)
    for backend in ("sqlite", "mock"):
        assert validate_tasks(tasks, backend).counts == {"kept": 30}
