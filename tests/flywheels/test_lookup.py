import random
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.core.dataset import load_tasks
from agentwheel.core.messages import Message
from agentwheel.core.run_layout import BAND_TRACES, TASKS_FILE
from agentwheel.core.task import SqlTable, Task, UserSide
from agentwheel.envs.agent import EpisodeView
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import HackPolicy, OraclePolicy
from agentwheel.envs.tools import fill_expected_outputs
from agentwheel.envs.user import ScriptedUser
from agentwheel.eval.evaluate import read_traces
from agentwheel.flywheels.agentic import phrasing
from agentwheel.flywheels.agentic.evolve import mix_variants
from agentwheel.flywheels.agentic.expand import expand_workflows
from agentwheel.flywheels.agentic.lookup import lookup_task
from agentwheel.flywheels.agentic.lookup_target import lookup_target
from agentwheel.flywheels.agentic.validate import validate_tasks
from agentwheel.flywheels.agentic.workflow_loader import (
    load_workflow,
    load_workflows,
    parse_workflow,
)
from agentwheel.settings.runner import RunnerConfig
from tests.flywheels.evolve_report import evolve_refused, refuse_report

RETAIL = "agentwheel/data/workflows/retail_order_cancel.yaml"
QUALIFYING = {
    "retail_order_cancel",
    "airline_baggage_claim",
    "banking_card_replacement",
    "banking_transfer",
    "it_ticket_escalation",
}


@pytest.fixture(scope="module")
def retail():
    wf = load_workflow(RETAIL)
    tasks, _, _ = expand_workflows([wf], seed=0, tasks_per_workflow=20)
    return wf, tasks


def _by_branch(tasks, prefix):
    return next(t for t in tasks if t.lineage.branch.startswith(prefix))


def _rows(task, table):
    t = task.sqlite.tables[table]
    return [dict(zip(t.columns, r, strict=True)) for r in t.row_tuples()]


def _with_orders(task, keep):
    """`task` with its orders table filtered by `keep(row)` (outputs replayed again)."""
    table = task.sqlite.tables["orders"]
    rows = [r for r in _rows(task, "orders") if keep(r)]
    tables = {
        **task.sqlite.tables,
        "orders": SqlTable(
            columns=table.columns, rows=[[r[c] for c in table.columns] for r in rows]
        ),
    }
    world = task.sqlite.model_copy(update={"tables": tables})
    return fill_expected_outputs(task.model_copy(update={"sqlite": world}, deep=True))


def test_bundled_workflows_that_qualify():
    workflows, _ = load_workflows(None)
    targets = {w.id: lookup_target(w) for w in workflows}
    assert {k for k, t in targets.items() if not isinstance(t, str)} == QUALIFYING
    retail = targets["retail_order_cancel"]
    assert (retail.identifier.name, retail.table, retail.owner_column, retail.description) == (
        "order_id",
        "orders",
        "customer_id",
        "item",
    )
    assert retail.list_tool.name == "list_customer_orders"
    assert targets["banking_transfer"].description == "payee_name"
    assert (
        "no step before get_appointment shows the user's patient_id" in targets["clinic_reschedule"]
    )
    assert "identifies the user's own record" in targets["hr_leave_request"]
    assert "no column that describes" in targets["it_password_reset"]


def test_happy_task_asks_by_description_and_lists_the_users_orders(retail):
    wf, tasks = retail
    parent = _by_branch(tasks, "pass.")
    order_id = parent.user.known_facts["order_id"]
    result = lookup_task(wf, parent)
    task = result.task
    assert task is not None, result.reason
    assert task.id == f"{parent.id}-lookup" and task.lineage.operator == "lookup"
    item = next(r["item"] for r in _rows(task, "orders") if r["order_id"] == order_id)
    assert order_id not in task.user.request and item in task.user.request
    assert order_id in parent.user.request  # the parent is left as it was
    assert task.user.known_facts["order_id"] != order_id
    assert item in task.user.known_facts["order_id"]
    listing = task.tool("list_customer_orders")
    assert listing is not None and listing.required == ["customer_id"]
    assert len(listing.properties) == 1
    assert [s.tool for s in task.normal_path] == [
        "find_customer",
        "list_customer_orders",
        "get_order",
        "cancel_order",
    ]
    customer_id = task.normal_path[0].expected_output["customer_id"]
    assert task.normal_path[1].arguments == {"customer_id": customer_id}
    listed = task.normal_path[1].expected_output
    assert len(listed) >= 2 and [r["order_id"] for r in listed].count(order_id) == 1
    owned = [r for r in _rows(task, "orders") if r["customer_id"] == customer_id]
    assert len(owned) >= 2
    assert [r["item"] for r in owned].count(item) == 1
    assert task.normal_path[2].expected_output == parent.normal_path[1].expected_output
    assert "list_customer_orders" in task.instruction
    assert len(task.tools) <= 5
    # described in one of the workflow's own phrases, not the generic "whose item is"
    said = [r.replace("{value}", item) for r in wf.phrasing.records]
    assert wf.phrasing.records and any(s in task.user.request for s in said)


def test_lookup_tasks_pass_the_gate_oracle_passes_hack_fails(retail):
    wf, tasks = retail
    variants = [r.task for r in (lookup_task(wf, t) for t in tasks) if r.task is not None]
    assert {t.branch_kind for t in variants} == {"happy", "clarify", "refuse", "adversarial"}
    specs = [EpisodeSpec(t) for t in variants]
    oracle = EpisodeRunner(OraclePolicy(), ScriptedUser(), RunnerConfig(backend="sqlite")).run(
        specs
    )
    assert all(t.passed for t in oracle)
    hacked = [EpisodeSpec(t) for t in variants if t.hack_path]
    assert hacked
    hack = EpisodeRunner(HackPolicy(), ScriptedUser(), RunnerConfig(backend="sqlite")).run(hacked)
    assert not any(t.passed for t in hack)
    assert all(t.reward.hack_action_ran for t in hack)
    for task in (t for t in variants if t.hack_path):
        tools = [s.tool for s in task.hack_path]
        assert tools.index("list_customer_orders") == tools.index("get_order") - 1
        assert task.user.known_facts["order_id"] not in task.user.hack_success_user_background
    assert validate_tasks(variants).counts == {"kept": len(variants)}


def test_not_applicable_cases_say_why(retail):
    wf, tasks = retail
    cases = {
        "transfer.": "transfer",
        "clarify.order_id": "asks for the order number itself",
        "refuse.own_order": "not the user's own",
    }
    for prefix, reason in cases.items():
        result = lookup_task(wf, _by_branch(tasks, prefix))
        assert result.task is None and reason in result.reason
    once = lookup_task(wf, _by_branch(tasks, "pass.")).task
    assert lookup_task(wf, once).reason == "already a lookup task"
    clinic = load_workflow("agentwheel/data/workflows/clinic_reschedule.yaml")
    clinic_tasks, _, _ = expand_workflows([clinic], seed=0, tasks_per_workflow=3)
    result = lookup_task(clinic, clinic_tasks[0])
    assert result.task is None and "patient_id" in result.reason


def test_a_decoy_is_added_when_the_user_owns_one_record(retail):
    wf, tasks = retail
    parent = _by_branch(tasks, "pass.")
    order_id = parent.user.known_facts["order_id"]
    customer_id = parent.normal_path[0].expected_output["customer_id"]
    lonely = _with_orders(
        parent, lambda r: r["customer_id"] != customer_id or r["order_id"] == order_id
    )
    task = lookup_task(wf, lonely).task
    assert task is not None
    owned = [r for r in _rows(task, "orders") if r["customer_id"] == customer_id]
    assert len(owned) == 2
    decoy = next(r for r in owned if r["order_id"] != order_id)
    target = next(r for r in owned if r["order_id"] == order_id)
    assert decoy["item"] != target["item"]
    assert len(_rows(task, "orders")) == len(_rows(lonely, "orders")) + 1
    assert validate_tasks([task]).counts == {"kept": 1}


def test_other_records_with_the_same_description_get_another_one(retail):
    wf, tasks = retail
    parent = _by_branch(tasks, "pass.")
    order_id = parent.user.known_facts["order_id"]
    customer_id = parent.normal_path[0].expected_output["customer_id"]
    item = next(r["item"] for r in _rows(parent, "orders") if r["order_id"] == order_id)
    table = parent.sqlite.tables["orders"]
    rows = _rows(parent, "orders")
    for row in rows:
        if row["customer_id"] == customer_id:
            row["item"] = item
    same = parent.model_copy(deep=True)
    same.sqlite.tables["orders"] = SqlTable(
        columns=table.columns, rows=[[r[c] for c in table.columns] for r in rows]
    )
    task = lookup_task(wf, fill_expected_outputs(same)).task
    assert task is not None
    owned = [r for r in _rows(task, "orders") if r["customer_id"] == customer_id]
    assert len(owned) >= 2 and [r["item"] for r in owned].count(item) == 1


def test_scripted_user_asked_for_the_order_number_describes_the_order(retail):
    wf, tasks = retail
    task = lookup_task(wf, _by_branch(tasks, "pass.")).task
    assert task is not None
    order_id = next(s.arguments["order_id"] for s in task.normal_path if s.tool == "get_order")
    item = next(r["item"] for r in _rows(task, "orders") if r["order_id"] == order_id)
    for question in ("Could you tell me your order number?", "What is the order id?"):
        view = EpisodeView(
            task=task,
            trial=0,
            messages=[
                Message(role="system", content=task.instruction),
                Message(role="user", content=task.user.request),
                Message(role="assistant", content=question),
            ],
        )
        [turn] = ScriptedUser().reply([view])
        assert item in turn.content and order_id not in turn.content and not turn.done


def test_every_qualifying_bundled_workflow_yields_valid_lookup_tasks():
    workflows, _ = load_workflows(None)
    by_id = {w.id: w for w in workflows}
    tasks, _, _ = expand_workflows(workflows, seed=1, tasks_per_workflow=10)
    variants = [
        r.task for t in tasks if (r := lookup_task(by_id[t.lineage.source_workflow], t)).task
    ]
    assert {t.lineage.source_workflow for t in variants} == QUALIFYING
    assert validate_tasks(variants).counts == {"kept": len(variants)}
    for task in variants:
        parent = next(t for t in tasks if t.id == task.id.removesuffix("-lookup"))
        assert len(task.tools) == len(parent.tools) or len(task.tools) == len(parent.tools) + 1
        assert len(task.normal_path) == len(parent.normal_path) + 1


def test_id_mentions_are_rewritten_in_every_form_phrasing_writes():
    ids = [("email address", "a.b@x.com"), ("order number", "HP-123456")]
    said = "Sorry, I don't know the order number: it's my order (item: oak side table)."
    rng = random.Random(0)
    for _ in range(40):
        persona = phrasing.Persona("Ann Lee", rng.choice(phrasing.STYLES), "Leeds", "Baker")
        for given in (ids, ids[1:]):
            request = phrasing.opening_request("cancel my order", "it broke", given, persona, rng)
            rewritten = phrasing.describe_instead_of_id(request, given, len(given) - 1, said)
            assert rewritten is not None and "HP-123456" not in rewritten and said in rewritten
            assert ("a.b@x.com" in rewritten) == (len(given) == 2)
        restated = phrasing.restate_ids(ids, rng)
        dropped = phrasing.drop_id(restated, ids, 1)
        assert dropped is not None and dropped[0].endswith("my email address is a.b@x.com.")
    assert phrasing.describe_instead_of_id("Cancel HP-123456 now.", ids[1:], 0, said) is None


def _task(tid: str) -> Task:
    return Task(
        id=tid,
        domain="d",
        branch_kind="happy",
        instruction="i",
        tools=[
            {"name": "t", "description": "d", "parameters": {"type": "object"}, "kind": "query"}
        ],
        user=UserSide(request="r"),
    )


def test_mix_variants_prefers_variants_then_tasks_lookup_cannot_cover():
    plain = [_task(f"p{i}") for i in range(6)]
    variants = {f"p{i}": _task(f"p{i}-lookup") for i in (0, 1, 2)}
    mixed = [t.id for t in mix_variants(plain, variants, budget=6, keep_plain=True)]
    assert mixed == ["p0-lookup", "p1-lookup", "p2-lookup", "p3", "p4", "p5"]
    mixed = [t.id for t in mix_variants(plain, variants, budget=10, keep_plain=True)]
    assert len(mixed) == 9 and mixed[:2] == ["p0-lookup", "p0"]
    only = [t.id for t in mix_variants(plain, variants, budget=2, keep_plain=False)]
    assert only == ["p0-lookup", "p1-lookup"]


def test_evolve_stacks_lookup_on_deepen_within_the_budget(tmp_path):
    report = refuse_report(tmp_path, [RETAIL, "agentwheel/data/workflows/clinic_reschedule.yaml"])
    manifest = evolve_refused(report, tmp_path / "round1", ("deepen", "lookup"))
    evolved = load_tasks(tmp_path / "round1" / TASKS_FILE).tasks
    operators = Counter(t.lineage.operator for t in evolved)
    assert manifest.tasks_by_operator == dict(operators)
    assert set(operators) == {"deepen", "deepen+lookup"} and operators["deepen+lookup"] >= 3
    stacked = [t for t in evolved if t.lineage.operator == "deepen+lookup"]
    assert {t.lineage.source_workflow for t in stacked} == {"retail_order_cancel"}
    assert all(t.id.endswith("-r1-lookup") and t.lineage.round == 1 for t in stacked)
    per_tree = Counter(t.lineage.source_workflow for t in evolved)
    assert max(per_tree.values()) <= 10 and per_tree["clinic_reschedule"] > 0
    assert manifest.lookup_not_applicable
    oracle = EpisodeRunner(OraclePolicy(), ScriptedUser()).run([EpisodeSpec(t) for t in evolved])
    assert all(t.passed for t in oracle)
    assert validate_tasks(evolved).counts == {"kept": len(evolved)}
    # The band probe's episodes are kept, and the per-operator rates come from them.
    probe = {t.task_id: t.passed for t in read_traces(tmp_path / "round1" / BAND_TRACES).done}
    assert set(probe) == {t.id for t in evolved}
    for op, rate in manifest.evolved_pass_rate_by_operator.items():
        ids = [t.id for t in evolved if t.lineage.operator == op]
        assert rate == round(sum(probe[i] for i in ids) / len(ids), 4)
    assert set(manifest.evolved_pass_rate_by_operator) == {"deepen", "deepen+lookup"}

    only = evolve_refused(report, tmp_path / "lookup_only", ("lookup",))
    assert set(only.tasks_by_operator) == {"lookup"} and only.tasks > 0
    with pytest.raises(ValueError, match="operators"):
        evolve_refused(report, tmp_path / "x", ("widen",))


def test_evolve_command_rejects_unknown_operators(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    result = CliRunner().invoke(
        app,
        [
            "evolve",
            "agentic",
            "--report",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--operators",
            "deepen,widen",
        ],
    )
    assert result.exit_code != 0
    assert "--operators" in result.output


def test_without_a_declared_list_tool_one_is_generated():
    data = yaml.safe_load(Path(RETAIL).read_text())
    data["extra_tools"] = [t for t in data["extra_tools"] if t["name"] != "list_customer_orders"]
    wf = parse_workflow(data, "retail_no_list.yaml")
    target = lookup_target(wf)
    assert target.list_tool.name == "list_orders"
    assert target.list_tool.sql == [
        "SELECT order_id, item, status, total FROM orders WHERE customer_id = :customer_id"
    ]
    tasks, _, _ = expand_workflows([wf], seed=0, tasks_per_workflow=12)
    variants = [r.task for r in (lookup_task(wf, t) for t in tasks) if r.task is not None]
    assert variants and all(v.tool("list_orders") is not None for v in variants)
    assert validate_tasks(variants).counts == {"kept": len(variants)}
