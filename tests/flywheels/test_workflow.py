import copy
import random

import pytest
import yaml

from agentwheel.flywheels.agentic.workflow import compare
from agentwheel.flywheels.agentic.workflow_loader import (
    BUNDLED_WORKFLOWS,
    WorkflowError,
    load_workflow,
    load_workflows,
    parse_workflow,
)
from tests.flywheels.small_workflow import small_data, small_workflow


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def error_for(tmp_path, data) -> WorkflowError:
    path = write(tmp_path, "wf.yaml", data)
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    assert info.value.file == str(path)
    assert str(path) in str(info.value)
    return info.value


def test_bundled_workflows_load_and_span_domains():
    workflows, rejections = load_workflows()
    assert rejections == []
    assert len(workflows) >= 8
    assert len({w.domain for w in workflows}) >= 5
    for wf in workflows:
        assert wf.source.startswith(str(BUNDLED_WORKFLOWS))
        assert any(s.tool.kind == "action" for s in wf.steps)
        # every workflow can be made deeper by the extra_conditions knob
        assert any(optional for _, _, optional in wf.all_preconditions()), wf.id


def test_small_workflow_parses():
    wf = small_workflow()
    assert [s.id for s in wf.steps] == ["lookup_loan", "renew"]
    assert wf.resolve("status", wf.steps[0]) == "loans.status"
    assert wf.transfer_spec().spec().required == ["loan_id"]


def test_schema_error_names_file_and_field(tmp_path):
    data = small_data()
    del data["steps"][0]["preconditions"][1]["rule"]
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.1.rule"
    assert "Field required" in error.message


def test_record_phrases_must_name_the_value(tmp_path):
    data = small_data()
    data["phrasing"]["records"] = ["it's the {value} I borrowed", "it's my library book"]
    error = error_for(tmp_path, data)
    assert error.field == "phrasing.records"
    assert "does not contain {value}" in error.message


def test_union_tags_are_not_part_of_the_field_path(tmp_path):
    data = small_data()
    data["tables"]["loans"]["rows"] = [4, "many"]
    assert error_for(tmp_path, data).field == "tables.loans.rows.1"


def test_unknown_precondition_field_is_named(tmp_path):
    data = small_data()
    data["steps"][0]["preconditions"][1]["field"] = "renewal_count"
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.1.field"
    assert "loans.renewal_count" in error.message


def test_sql_that_does_not_compile_is_named(tmp_path):
    data = small_data()
    data["steps"][1]["tool"]["sql"][0] = "UPDATE loanz SET renewals = 1 WHERE loan_id = :loan_id"
    error = error_for(tmp_path, data)
    assert error.field == "steps.1.tool.sql.0"
    assert "no such table" in error.message


def test_sql_placeholder_without_parameter_is_named(tmp_path):
    data = small_data()
    data["steps"][1]["tool"]["sql"][1] = "INSERT INTO renewal_log (loan_id) VALUES (:loan)"
    error = error_for(tmp_path, data)
    assert error.field == "steps.1.tool.sql.1"
    assert "['loan']" in error.message


def test_precondition_the_generator_cannot_violate_is_rejected(tmp_path):
    data = small_data()
    data["tables"]["loans"]["columns"]["status"] = {"choice": ["on_loan"]}
    error = error_for(tmp_path, data)
    assert error.field == "steps.0.preconditions.0.value"
    assert "cannot both satisfy and violate" in error.message


def test_identifier_in_an_intent_is_rejected(tmp_path):
    # A clarify branch must be able to leave the identifier out of the request.
    data = small_data()
    data["phrasing"]["intents"][0] = "renew loan {loans.loan_id}"
    error = error_for(tmp_path, data)
    assert error.field == "phrasing.intents.0"
    assert "identifier" in error.message


def test_parameter_type_must_fit_the_bound_field(tmp_path):
    data = small_data()
    data["steps"][1]["tool"]["params"] = {"loan_id": "integer"}
    error = error_for(tmp_path, data)
    assert error.field == "steps.1.args.loan_id"


def test_paraphrases_of_an_argument_must_contain_its_value(tmp_path):
    # The agent passes the value to a tool, so the user's words must carry it.
    data = small_data()
    data["request_fields"] = {
        "reason": {"choice": ["lost", "late"], "say": {"lost": ["I lost it"], "late": ["oops"]}}
    }
    data["steps"][1]["tool"]["params"]["reason"] = "string"
    data["steps"][1]["tool"]["sql"][1] = "INSERT INTO renewal_log (loan_id) VALUES (:reason)"
    data["steps"][1]["args"]["reason"] = "request.reason"
    data["phrasing"]["reasons"] = ["{request.reason}"]
    error = error_for(tmp_path, data)
    assert error.field == "request_fields.reason.say.late"


def test_invalid_yaml_is_an_error_with_a_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("id: x\nsteps: [\n")
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    assert info.value.field.startswith("line ")


def test_load_workflows_counts_bad_files_as_rejections(tmp_path):
    write(tmp_path, "a_good.yaml", small_data())
    bad = small_data()
    bad["id"] = "other"
    bad["transfer"]["identifier"] = "member_id"
    write(tmp_path, "b_bad.yaml", bad)
    (tmp_path / "c_list.yaml").write_text("- just\n- a list\n")
    workflows, rejections = load_workflows(tmp_path)
    assert [w.id for w in workflows] == ["library_renewal"]
    assert [(r.stage, r.field) for r in rejections] == [
        ("load", "transfer.identifier"),
        ("load", ""),
    ]
    assert [r.reason for r in rejections] == ["invalid_workflow", "invalid_workflow"]
    assert rejections[0].item.endswith("b_bad.yaml")


def test_duplicate_workflow_ids_are_rejected(tmp_path):
    write(tmp_path, "a.yaml", small_data())
    write(tmp_path, "b.yaml", small_data())
    workflows, rejections = load_workflows(tmp_path)
    assert len(workflows) == 1
    assert (rejections[0].field, rejections[0].reason) == ("id", "duplicate_id")
    assert rejections[0].item.endswith("b.yaml") and "a.yaml" in rejections[0].detail


@pytest.mark.parametrize(
    ("actual", "op", "threshold", "expected"),
    [
        ("pending", "eq", "pending", True),
        ("shipped", "eq", "pending", False),
        (500, "le", 500, True),
        (500.01, "le", 500, False),
        (23, "ge", 24, False),
        ("2025-06-16", "ge", "2025-06-16", True),
        ("2025-06-15", "ge", "2025-06-16", False),
        ("lost", "in", ["delayed", "lost"], True),
        ("gift_card", "not_in", ["gift_card"], False),
        ("abc", "lt", 3, False),  # incomparable never satisfies an ordering
    ],
)
def test_compare(actual, op, threshold, expected):
    assert compare(actual, op, threshold) is expected


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def test_mutated_workflows_are_errors_never_crashes():
    # Replace random parts of a real workflow by junk or by other values of the same file.
    base = yaml.safe_load((BUNDLED_WORKFLOWS / "banking_transfer.yaml").read_text())
    junk: list[object] = [None, 0, -1, 2.5, "", "x.y", [], {}, ["a"], "request.nope", "{nope.nope}"]
    rng = random.Random(0)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(150):
        data = copy.deepcopy(base)
        path = rng.choice([p for p in _paths(data) if p])
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        scalars = [v for v in (_get(data, p) for p in _paths(data)) if isinstance(v, str | int)]
        parent[path[-1]] = rng.choice(junk + rng.sample(scalars, 5))
        try:
            parse_workflow(data, "mutated.yaml")
            outcomes["ok"] += 1
        except WorkflowError as exc:
            assert exc.file == "mutated.yaml"
            outcomes["error"] += 1
    assert outcomes["error"] > 50


def _get(data, path):
    for key in path:
        data = data[key]
    return data
