"""The constructs of the bundled library_loan_renewal and pharmacy_renewal workflows
(issue #25): rules with alternatives (`any_of`), hand-off desks, related-rows rules that
tell people apart (`differ`), count (`at_most`) and look back over a date window
(`within`), columns that follow a referenced row (`follows`) and conditional uniqueness.
Their tasks pass the gate on both back-ends, the reward fails what each forbids, and no
world breaks the workflow's invariants."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentwheel.core.task import Task, ToolCallStep
from agentwheel.envs.scripted import REFUSAL, HackPolicy, OraclePolicy
from agentwheel.flywheels.agentic.expand import expand_workflows
from agentwheel.flywheels.agentic.validate import validate_tasks
from agentwheel.flywheels.agentic.workflow_loader import (
    BUNDLED_WORKFLOWS,
    WorkflowError,
    load_workflow,
    parse_workflow,
)
from agentwheel.flywheels.agentic.world_invariants import (
    INVARIANTS_BROKEN,
    task_rows,
    world_violations,
)
from tests.flywheels.test_constructs import BACKENDS, Scripted, all_pass, none_pass, of_branch

LIBRARY = BUNDLED_WORKFLOWS / "library_loan_renewal.yaml"
PHARMACY = BUNDLED_WORKFLOWS / "pharmacy_renewal.yaml"
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"
TODAY = date(2025, 6, 2)


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    made, _, rejections = expand_workflows([LIBRARY, PHARMACY], seed=0, tasks_per_workflow=60)
    assert rejections == []
    return made


def rows(task: Task, table: str) -> list[dict[str, Any]]:
    assert task.sqlite is not None
    t = task.sqlite.tables[table]
    return [dict(zip(t.columns, r, strict=True)) for r in t.row_tuples()]


def of_workflow(tasks: list[Task], workflow: str) -> list[Task]:
    return [t for t in tasks if t.lineage.source_workflow == workflow]


def checks_then(closing: str):
    """Make the normal path's query calls, then say `closing` (no action)."""
    return Scripted(
        lambda t: [s for s in t.normal_path if s.tool.startswith(("get_", "list_"))],
        lambda t: closing,
    )


def test_the_new_workflows_pass_the_gate_on_both_back_ends(tasks):
    assert len(tasks) == 120
    for backend in BACKENDS:
        report = validate_tasks(tasks, backend)  # type: ignore[arg-type]
        assert report.counts == {"kept": 120}, report.rejected[:3]
    for workflow in ("library_loan_renewal", "pharmacy_renewal"):
        kinds = {t.branch_kind for t in of_workflow(tasks, workflow)}
        assert kinds == {"happy", "clarify", "refuse", "transfer", "adversarial"}
    assert all_pass(OraclePolicy(), tasks)
    hacks = [t for t in tasks if t.hack_path]
    assert len(hacks) > 40 and none_pass(HackPolicy(), hacks)


def test_no_world_breaks_the_workflows_invariants(tasks):
    workflows = {w.id: w for w in map(load_workflow, (LIBRARY, PHARMACY))}
    for task in tasks:
        wf = workflows[task.lineage.source_workflow]
        assert task.sqlite is not None
        assert world_violations(wf, task_rows(wf, task.sqlite.tables)) == [], task.id


def test_a_rule_with_alternatives_fails_only_when_every_one_fails(tasks):
    refused = of_branch(tasks, "pharmacy_renewal", "refuse.renewal_due")
    for task in refused:
        rx = task.normal_path[0].expected_output
        assert rx["refills_left"] > 0 and rx["expires"] >= "2025-06-02"
    happy = of_branch(tasks, "pharmacy_renewal", "pass.request_rate")
    by_refills = [t for t in happy if t.normal_path[0].expected_output["refills_left"] == 0]
    by_expiry = [t for t in happy if t.normal_path[0].expected_output["expires"] < "2025-06-02"]
    assert by_refills and by_expiry, "each alternative carries some happy worlds"
    assert all_pass(OraclePolicy(), refused + happy)
    # requesting the renewal anyway is the forbidden behaviour
    assert none_pass(Scripted(lambda t: t.hack_path, lambda t: "Sent."), refused)
    # an agent that reads the rule as "no refills left" alone refuses expired ones wrongly
    refills_only = [t for t in by_expiry if t.normal_path[0].expected_output["refills_left"] > 0]
    assert refills_only and none_pass(checks_then(REFUSAL), refills_only)


def test_each_desk_has_its_own_tool_branch_and_reward_check(tasks):
    pharmacist = of_branch(tasks, "pharmacy_renewal", "handoff.not_controlled")
    pharmacist += of_branch(tasks, "pharmacy_renewal", "transfer.side_effects")
    elending = of_branch(tasks, "library_loan_renewal", "handoff.not_ebook")
    elending += of_branch(tasks, "library_loan_renewal", "transfer.ebook_access")
    general = of_branch(tasks, "pharmacy_renewal", "transfer.billing")
    general += of_branch(tasks, "library_loan_renewal", "transfer.fines")
    for group, tool in (
        (pharmacist, "transfer_to_pharmacist"),
        (elending, "transfer_to_elending"),
        (general, "transfer_to_human"),
    ):
        for task in group:
            assert task.evaluation.transfer_tool == tool
            assert task.normal_path[-1].tool == tool
            assert {"transfer_to_human", tool} <= {t.name for t in task.tools}
    assert all_pass(OraclePolicy(), pharmacist + elending + general)

    def other_desk(task: Task) -> list[ToolCallStep]:
        last = task.normal_path[-1]
        wrong = "transfer_to_elending" if "elending" not in last.tool else "transfer_to_human"
        if last.tool == "transfer_to_human":
            wrong = next(
                t.name
                for t in task.tools
                if t.name.startswith("transfer_to_") and t.name != last.tool
            )
        return [*task.normal_path[:-1], ToolCallStep(tool=wrong, arguments=last.arguments)]

    # handing over to the wrong desk fails on both back-ends
    assert none_pass(Scripted(other_desk, lambda t: "I have transferred you."), pharmacist)
    assert none_pass(Scripted(other_desk, lambda t: "I have transferred you."), elending)
    assert none_pass(Scripted(other_desk, lambda t: "I have transferred you."), general)
    # the desk is recorded with the hand-off
    assert all(rows(t, "handoffs") == [] for t in pharmacist)
    assert "desk" in pharmacist[0].sqlite.tables["handoffs"].columns  # type: ignore[union-attr]
    assert "transfer_to_pharmacist hands the user to the pharmacist" in pharmacist[0].instruction


def test_a_hold_by_another_member_stops_the_renewal_and_ones_own_does_not(tasks):
    refused = of_branch(tasks, "library_loan_renewal", "refuse.no_hold_by_another")
    for task in refused:
        loan, holds = task.normal_path[0].expected_output, task.normal_path[1].expected_output
        assert [
            h for h in holds if h["status"] == "waiting" and h["member_id"] != loan["member_id"]
        ]
    happy = of_branch(tasks, "library_loan_renewal", "pass.no_hold_by_another")
    for task in happy:
        loan, holds = task.normal_path[0].expected_output, task.normal_path[1].expected_output
        assert not [
            h for h in holds if h["status"] == "waiting" and h["member_id"] != loan["member_id"]
        ]
    assert all_pass(OraclePolicy(), refused + happy)
    assert none_pass(Scripted(lambda t: t.hack_path, lambda t: "Renewed."), refused)


def in_window(listing: list[dict[str, Any]]) -> int:
    first = (TODAY - timedelta(days=30)).isoformat()
    return sum(first <= r["requested_on"] <= TODAY.isoformat() for r in listing)


def test_a_count_over_a_date_window_stops_the_third_request(tasks):
    refused = of_branch(tasks, "pharmacy_renewal", "refuse.request_rate")
    assert all(in_window(t.normal_path[1].expected_output) >= 2 for t in refused)
    happy = of_branch(tasks, "pharmacy_renewal", "pass.request_rate")
    counts = [in_window(t.normal_path[1].expected_output) for t in happy]
    assert max(counts) == 1 and 0 in counts  # at the limit some of the time
    # older requests are listed too: the window, not the list, decides
    assert any(len(t.normal_path[1].expected_output) > 1 for t in happy)
    assert all_pass(OraclePolicy(), refused + happy)
    assert none_pass(Scripted(lambda t: t.hack_path, lambda t: "Sent."), refused)


def test_a_following_column_agrees_with_the_row_it_follows(tasks):
    for task in of_workflow(tasks, "pharmacy_renewal"):
        patient_of = {r["rx_id"]: r["patient_id"] for r in rows(task, "prescriptions")}
        for request in rows(task, "renewal_requests"):
            assert request["patient_id"] == patient_of[request["rx_id"]], task.id


def test_without_follows_the_disagreeing_worlds_never_become_tasks():
    data = yaml.safe_load(PHARMACY.read_text())
    data["tables"]["renewal_requests"]["columns"]["patient_id"] = {"ref": "patients.patient_id"}
    wf = parse_workflow(data, "pharmacy_without_follows.yaml")
    made, _, rejections = expand_workflows([wf], seed=0, tasks_per_workflow=10)
    for task in made:
        assert task.sqlite is not None
        assert world_violations(wf, task_rows(wf, task.sqlite.tables)) == []
    broken = [r for r in rejections if INVARIANTS_BROKEN in r.detail]
    assert broken and "renewal_requests row" in broken[0].detail


def test_an_item_is_on_at_most_one_active_loan(tasks):
    shared_returned = 0
    for task in of_workflow(tasks, "library_loan_renewal"):
        loans = rows(task, "loans")
        active = [r["item_id"] for r in loans if r["status"] == "active"]
        assert len(active) == len(set(active)), task.id
        items = [r["item_id"] for r in loans]
        shared_returned += len(items) != len(set(items))
    assert shared_returned > 0, "returned loans of one item may repeat"


MISTAKES = [
    (
        PHARMACY,
        "        desk: pharmacist\n        rule: >-",
        "        desk: pharmcist\n        rule: >-",
        "steps.0.preconditions.1.desk",
        "no desk 'pharmcist' (desks: pharmacist)",
    ),
    (
        PHARMACY,
        "    spoken: pharmacist\n",
        "    spoken: pharmacist on duty\n",
        "steps.0.preconditions.1.rule",
        "does not name that desk",
    ),
    (
        PHARMACY,
        "at_most: 1",
        "at_most: 1\n          exist: true",
        "steps.1.preconditions.0.related.at_most",
        "use one of them",
    ),
    (
        PHARMACY,
        'of: "2025-06-02"',
        'of: "06/02/2025"',
        "steps.1.preconditions.0.related.within.of",
        "not an ISO date",
    ),
    (
        PHARMACY,
        "{follows: rx_id.patient_id}",
        "{follows: rx_id.patient}",
        "tables.renewal_requests.columns.patient_id.follows",
        "'patient' is not a column of prescriptions",
    ),
    (
        PHARMACY,
        '- {field: expires, op: lt, value: "2025-06-02"}',
        '- {field: expires, op: lt, value: "2026-06-02"}',
        "steps.0.preconditions.0.any_of.1.value",
        "outside",
    ),
    (
        LIBRARY,
        "when: {status: active}",
        "when: {status: on_loan}",
        "tables.loans.unique.0.when.status",
        "'on_loan' is not a value of loans.status",
    ),
]


@pytest.mark.parametrize("source, old, new, field, words", MISTAKES)
def test_construct_mistakes_name_the_field(tmp_path, source, old, new, field, words):
    text = source.read_text()
    assert old in text
    path = tmp_path / "wf.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    assert info.value.field == field, info.value
    assert words in info.value.message, info.value


def _blocks(section: str) -> list[str]:
    text = GUIDE.read_text()
    part = text[text.index(section) :]
    part = part[: part.index("\n## ", 1)] if "\n## " in part[1:] else part
    return [b.split("```", 1)[0] for b in part.split("```yaml\n")[1:]]


def test_the_guide_shows_each_construct_as_the_bundled_workflows_write_it():
    sources = [" ".join(p.read_text().split()) for p in (LIBRARY, PHARMACY)]
    blocks = _blocks("## 5. Rules real businesses write")
    assert len(blocks) >= 6
    for block in blocks:
        yaml.safe_load(block)
        assert any(" ".join(block.split()) in s for s in sources), block


def test_the_cross_check_names_what_a_world_breaks(tasks):
    wf = load_workflow(LIBRARY)
    task = of_workflow(tasks, "library_loan_renewal")[0]
    assert task.sqlite is not None
    world = task_rows(wf, task.sqlite.tables)
    assert world_violations(wf, world) == []
    loans = world["loans"]
    loans[1].update(item_id=loans[0]["item_id"], status="active")
    loans[0]["status"] = "active"
    world["holds"][0]["member_id"] = "LM-00000"
    found = world_violations(wf, world)
    assert any("share ['item_id']" in v and "'status': 'active'" in v for v in found), found
    assert any(v.startswith("holds row 0: member_id = 'LM-00000' points at no row") for v in found)
