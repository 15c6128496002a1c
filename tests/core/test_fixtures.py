"""The bundled fixture dataset (data/fixtures): shape, counts, replay on both back-ends,
the scripted yardsticks, and that the committed JSONL is exactly what its builder makes."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from agentwheel.core.messages import Message
from agentwheel.core.resources import bundled_data
from agentwheel.core.task import BRANCH_KINDS, Task
from agentwheel.envs.agent import EpisodeView
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import SCRIPTED_POLICIES, facts_to_ask_for
from agentwheel.envs.tools import SqliteTools, is_tool_error, replay
from agentwheel.envs.user import ScriptedUser
from agentwheel.flywheels.agentic.validate import validate_tasks
from agentwheel.settings.runner import RunnerConfig

FIXTURES = bundled_data("fixtures")
BUILDER = Path(__file__).resolve().parents[2] / "scripts" / "build_fixtures.py"
DOMAINS = ("retail", "airline", "clinic")
PER_DOMAIN = {"happy": 3, "clarify": 3, "refuse": 3, "transfer": 2, "adversarial": 3}
MINIMUM = {"happy": 3, "clarify": 2, "refuse": 3, "transfer": 2, "adversarial": 2}
TRANSFER_TOOLS = {
    "retail": "transfer_to_human",
    "airline": "transfer_to_agent",
    "clinic": "transfer_to_staff",
}


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_fixtures", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_committed() -> list[Task]:
    tasks = []
    for domain in DOMAINS:
        for line in (FIXTURES / f"{domain}.jsonl").read_text(encoding="utf-8").splitlines():
            tasks.append(Task.model_validate_json(line))
    return tasks


TASKS = load_committed()
BY_ID = {t.id: t for t in TASKS}
WITH_HACK = [t for t in TASKS if t.hack_path]


def ids(tasks: list[Task]) -> list[str]:
    return [t.id for t in tasks]


def test_every_line_is_a_task_with_a_unique_stable_id():
    assert len(TASKS) == 42 and len(BY_ID) == 42
    for domain in DOMAINS:
        lines = (FIXTURES / f"{domain}.jsonl").read_text(encoding="utf-8").splitlines()
        assert all(Task.model_validate_json(line).domain == domain for line in lines)
    for t in TASKS:
        assert re.fullmatch(rf"{t.domain}-{t.branch_kind}-\d\d", t.id), t.id
        assert t.lineage.source_workflow == f"fixtures/{t.domain}"
        assert t.lineage.branch and t.lineage.round == 0
    numbers = Counter((t.domain, t.branch_kind) for t in TASKS)
    for (domain, kind), n in numbers.items():
        expected = [f"{domain}-{kind}-{i:02d}" for i in range(1, n + 1)]
        assert [t.id for t in TASKS if (t.domain, t.branch_kind) == (domain, kind)] == expected


def test_counts_per_domain_and_branch_kind():
    counts = Counter((t.domain, t.branch_kind) for t in TASKS)
    for domain in DOMAINS:
        per_kind = {kind: counts[(domain, kind)] for kind in BRANCH_KINDS}
        assert per_kind == PER_DOMAIN
        assert all(per_kind[k] >= MINIMUM[k] for k in BRANCH_KINDS)
        assert sum(per_kind.values()) >= 12


def test_committed_jsonl_is_exactly_what_the_builder_makes():
    builder = load_builder()
    first, second = builder.build_tasks(), builder.build_tasks()
    assert first == second  # deterministic
    assert first == TASKS
    for domain, lines in builder.jsonl_lines(first).items():
        committed = (FIXTURES / f"{domain}.jsonl").read_text(encoding="utf-8")
        assert committed == "".join(line + "\n" for line in lines), f"rerun the builder: {domain}"


def test_builder_rejects_a_refusal_whose_normal_path_acts():
    builder = load_builder()
    bad = BY_ID["retail-refuse-01"].model_copy(deep=True)
    bad.normal_path.append(bad.hack_path[0])
    with pytest.raises(builder.FixtureError, match="must not act"):
        builder.check_task(bad)


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_domain_shares_one_policy_tool_set_and_world(domain):
    tasks = [t for t in TASKS if t.domain == domain]
    first = tasks[0]
    assert all(t.instruction == first.instruction for t in tasks)
    assert all(t.tools == first.tools and t.sqlite == first.sqlite for t in tasks)
    assert "Policy:" in first.instruction
    assert 3 <= len(first.tools) <= 5
    assert {t.kind for t in first.tools} == {"query", "action"}
    for spec in first.tools:
        assert len(spec.properties) <= 3
        assert spec.required == list(spec.properties)
        assert all(
            p["type"] in ("string", "integer", "number", "boolean")
            for p in spec.properties.values()
        )
    transfer = first.tool(TRANSFER_TOOLS[domain])
    assert transfer is not None and transfer.kind == "action"
    assert len(transfer.properties) == 1  # an identifier, not free text
    assert all(t.evaluation.transfer_tool == TRANSFER_TOOLS[domain] for t in tasks)


@pytest.mark.parametrize("domain", DOMAINS)
def test_sql_binds_every_argument_and_formats_none(domain):
    task = next(t for t in TASKS if t.domain == domain)
    assert task.sqlite is not None
    for spec in task.tools:
        text = " ".join(task.sqlite.tools[spec.name].sql)
        assert set(re.findall(r"(?<!:):([A-Za-z_]\w*)", text)) == set(spec.properties)
        assert "{" not in text and "%" not in text
    rows = sum(len(table.rows) for table in task.sqlite.tables.values())
    assert rows >= 25  # many customers and records, so the agent must use the right ids


@pytest.mark.parametrize("task", TASKS, ids=ids(TASKS))
def test_expected_outputs_are_what_both_backends_return(task):
    for path_name, steps in (("normal", task.normal_path), ("hack", task.hack_path)):
        expected = [s.expected_output for s in steps]
        sqlite_hash, sqlite_out = replay(task, path_name, "sqlite")
        mock_hash, mock_out = replay(task, path_name, "mock")
        assert sqlite_out == expected == mock_out
        assert not any(is_tool_error(o) for o in sqlite_out)
        assert replay(task, path_name, "sqlite")[0] == sqlite_hash
        assert replay(task, path_name, "mock")[0] == mock_hash


@pytest.mark.parametrize("task", TASKS, ids=ids(TASKS))
def test_state_changes_match_the_branch_kind(task):
    assert task.sqlite is not None
    initial = SqliteTools(task.sqlite).state_hash()
    normal_sqlite = replay(task, "normal", "sqlite")[0]
    normal_mock = replay(task, "normal", "mock")[0]
    empty_ledger = replay(task.model_copy(update={"normal_path": []}), "normal", "mock")[0]
    normal_actions = [s for s in task.normal_path if s.tool in task.action_tools]
    if task.branch_kind in ("refuse", "adversarial"):
        assert normal_actions == []
        assert normal_sqlite == initial and normal_mock == empty_ledger
        assert task.hack_action_keys()
        assert replay(task, "hack", "sqlite")[0] not in (normal_sqlite, initial)
        assert replay(task, "hack", "mock")[0] != normal_mock
    else:
        assert task.hack_path == []
        assert normal_sqlite != initial and normal_mock != empty_ledger
    called = [s.tool for s in task.normal_path]
    assert (task.evaluation.transfer_tool in called) == (task.branch_kind == "transfer")


@pytest.mark.parametrize("task", TASKS, ids=ids(TASKS))
def test_user_side_and_signals_fit_the_branch(task):
    user = task.user
    signals = {
        "happy": [],
        "clarify": ["clarification"],
        "refuse": ["refusal"],
        "adversarial": ["refusal"],
        "transfer": ["transfer"],
    }
    assert task.evaluation.required_signals == signals[task.branch_kind]
    assert user.situation and task.evaluation.description
    assert "\n" not in user.request and user.request[-1] in ".?" and len(user.request) < 140
    assert not re.search(r"[.?!] [A-Z]", user.request.replace("Dr. ", "Dr ")), "one sentence"
    assert not re.search(r"\b(branch|hack|oracle|scenario|fixture|jailbreak)", user.request, re.I)
    missing = facts_to_ask_for(task)
    assert bool(missing) == (task.branch_kind == "clarify")
    assert all(user.aliases.get(name) for name in missing)  # natural ways to ask for it
    if task.branch_kind in ("refuse", "adversarial"):
        assert user.escape_strategy and user.escape_utterance
        for step in task.hack_path:
            for value in step.arguments.values():
                assert str(value) in user.hack_success_user_background
    else:
        assert not (user.escape_utterance or user.hack_success_user_background)


def test_spot_values_from_the_worlds():
    cancel = BY_ID["retail-happy-01"].normal_path[-1].expected_output
    assert cancel == {"order_id": "O-20401", "status": "cancelled", "refund_amount": 54.95}
    assert BY_ID["retail-happy-01"].evaluation.required_outputs == ["54.95"]
    flights = BY_ID["airline-refuse-03"].normal_path[1].expected_output
    assert {f["flight_no"]: f["seats_left"] for f in flights} == {
        "AW210": 23,
        "AW214": 8,
        "AW218": 0,
    }
    appointment = BY_ID["clinic-refuse-02"].normal_path[0].expected_output
    assert appointment["reschedule_count"] == 2 and appointment["status"] == "booked"
    moved = BY_ID["clinic-happy-02"].normal_path[-1].expected_output
    assert moved["slot_id"] == "S-7315" and moved["starts_at"] == "2025-04-11 15:30"
    hack = BY_ID["airline-adversarial-01"].hack_path[0].expected_output
    assert hack["flight_no"] == "AW514" and hack["status"] == "no_show"


def run_scripted(policy: str, backend: str) -> dict[str, tuple[bool, bool]]:
    runner = EpisodeRunner(
        SCRIPTED_POLICIES[policy](), ScriptedUser(), RunnerConfig(backend=backend)
    )
    trajectories = runner.run(EpisodeSpec(task=t) for t in TASKS)
    return {tr.task_id: (tr.reward.passed, tr.reward.hack_action_ran) for tr in trajectories}


@pytest.mark.parametrize("backend", ["sqlite", "mock"])
def test_scripted_yardsticks(backend):
    oracle = run_scripted("oracle", backend)
    hack = run_scripted("hack", backend)
    refuse = run_scripted("refuse", backend)
    cautious = run_scripted("cautious", backend)
    assert {i for i, (passed, _) in oracle.items() if passed} == set(BY_ID)
    assert not any(passed for passed, _ in hack.values())
    assert {i for i, (_, ran) in hack.items() if ran} == set(ids(WITH_HACK))
    refusals = {t.id for t in TASKS if t.branch_kind in ("refuse", "adversarial")}
    assert not any(passed for passed, _ in refuse.values())
    assert {i for i, (passed, _) in cautious.items() if passed} == refusals


@pytest.mark.parametrize(
    "task", [t for t in TASKS if t.branch_kind == "clarify"], ids=lambda t: t.id
)
def test_clarify_facts_are_revealed_when_asked_for_naturally(task):
    for name in facts_to_ask_for(task):
        for phrase in task.user.aliases[name]:
            view = EpisodeView(
                task=task,
                trial=0,
                messages=[
                    Message(role="system", content=task.instruction),
                    Message(role="user", content=task.user.request),
                    Message(role="assistant", content=f"Sure! Could you tell me your {phrase}?"),
                ],
            )
            [turn] = ScriptedUser().reply([view])
            assert task.user.known_facts[name] in turn.content and not turn.done


@pytest.mark.parametrize("backend", ["auto", "mock"])
def test_the_agentic_validation_gate_keeps_every_fixture(backend):
    report = validate_tasks(TASKS, backend)
    assert report.rejected == [] and ids(report.kept) == ids(TASKS)
