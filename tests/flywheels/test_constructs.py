"""The workflow constructs of the bundled car_rental_change and hotel_booking workflows:
each one's tasks pass the gate, the oracle passes them on both back-ends, and the reward
fails the behaviour the construct forbids."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import yaml

from agentwheel.core.messages import Completion, ToolCall
from agentwheel.core.task import Task, ToolCallStep
from agentwheel.envs.agent import EpisodeView
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import REFUSAL, HackPolicy, OraclePolicy, RefusePolicy
from agentwheel.envs.user import ScriptedUser
from agentwheel.flywheels.agentic.expand import expand_workflows
from agentwheel.flywheels.agentic.validate import validate_tasks
from agentwheel.flywheels.agentic.workflow_loader import (
    BUNDLED_WORKFLOWS,
    WorkflowError,
    load_workflow,
    parse_workflow,
)
from agentwheel.llm.tool_calls import format_tool_call
from agentwheel.settings.runner import RunnerConfig

BACKENDS = ("sqlite", "mock")
CAR = BUNDLED_WORKFLOWS / "car_rental_change.yaml"
HOTEL = BUNDLED_WORKFLOWS / "hotel_booking.yaml"


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    made, _, rejections = expand_workflows([CAR, HOTEL], seed=0, tasks_per_workflow=60)
    assert rejections == []
    return made


def of_branch(tasks: list[Task], workflow: str, branch: str) -> list[Task]:
    found = [
        t for t in tasks if t.lineage.source_workflow == workflow and t.lineage.branch == branch
    ]
    assert found, f"no {workflow} task of branch {branch}"
    return found


class Scripted:
    """A policy that makes `calls(task)` one per turn, then says `closing(task)`."""

    name = "scripted"

    def __init__(
        self,
        calls: Callable[[Task], Sequence[ToolCallStep]],
        closing: Callable[[Task], str],
        ask: str = "",
    ):
        self.calls, self.closing, self.ask = calls, closing, ask

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [self._one(v) for v in views]

    def _one(self, view: EpisodeView) -> Completion:
        if self.ask and not view.scratch.get("asked"):
            view.scratch["asked"] = True
            return Completion(text=self.ask)
        made = sum(len(m.tool_calls) for m in view.messages if m.role == "assistant")
        steps = list(self.calls(view.task))
        if made < len(steps):
            step = steps[made]
            call = ToolCall(id=f"c{made}", name=step.tool, arguments=dict(step.arguments))
            return Completion(text=format_tool_call(step.tool, step.arguments), tool_calls=[call])
        return Completion(text=self.closing(view.task))


def run(policy, tasks: list[Task], backend: str) -> list:
    config = RunnerConfig(backend=backend)  # type: ignore[arg-type]
    return EpisodeRunner(policy, ScriptedUser(), config).run([EpisodeSpec(t) for t in tasks])


def passes(policy, tasks: list[Task]) -> dict[str, list[bool]]:
    return {b: [r.passed for r in run(policy, tasks, b)] for b in BACKENDS}


def all_pass(policy, tasks) -> bool:
    return all(all(v) for v in passes(policy, tasks).values())


def none_pass(policy, tasks) -> bool:
    return not any(any(v) for v in passes(policy, tasks).values())


def normal_calls(task: Task) -> list[ToolCallStep]:
    return task.normal_path


def test_the_new_workflows_pass_the_gate_on_both_back_ends(tasks):
    for backend in BACKENDS:
        report = validate_tasks(tasks, backend)  # type: ignore[arg-type]
        assert report.counts == {"kept": len(tasks)}, report.rejected[:3]
    kinds = {t.branch_kind for t in tasks}
    assert kinds == {"happy", "clarify", "refuse", "transfer", "adversarial"}
    assert all_pass(OraclePolicy(), tasks)
    hacks = [t for t in tasks if t.hack_path]
    assert len(hacks) > 40 and none_pass(HackPolicy(), hacks)


def test_a_failed_transfer_rule_needs_the_hand_off_not_a_refusal(tasks):
    handoffs = of_branch(tasks, "car_rental_change", "handoff.not_commercial")
    pushed = [t for t in tasks if t.lineage.branch.startswith("adversarial.not_commercial.")]
    for task in handoffs + pushed:
        assert task.evaluation.required_signals == ["transfer"]
        assert task.normal_path[-1].tool == "transfer_to_human"
        assert task.normal_path[1].expected_output["vehicle_class"] == "commercial"
        # acting instead of handing over is the hack
        assert task.hack_path[-1].tool == "extend_rental"
    assert all_pass(OraclePolicy(), handoffs + pushed)
    # refusing (checks made, no hand-off) is what a plain rule wants, and fails here
    checks_then_refuse = Scripted(lambda t: t.normal_path[:-1], lambda t: REFUSAL)
    assert none_pass(checks_then_refuse, handoffs + pushed)
    assert none_pass(RefusePolicy(), handoffs + pushed)
    assert none_pass(HackPolicy(), pushed)


def test_a_related_rows_rule_refuses_a_booking_over_an_existing_one(tasks):
    refused = of_branch(tasks, "hotel_booking", "refuse.no_double_booking")
    happy = [t for t in tasks if t.lineage.source_workflow == "hotel_booking"]
    happy = [t for t in happy if t.branch_kind == "happy"]
    for task in refused:
        listing = task.normal_path[-1].expected_output
        book = task.hack_path[-1]
        clash = [
            r
            for r in listing
            if r["check_in"] == book.arguments["check_in"] and r["status"] == "confirmed"
        ]
        assert clash, "the refusal's world holds the other confirmed booking"
    for task in happy:
        listing = task.normal_path[1].expected_output
        check_in = task.normal_path[-1].arguments["check_in"]
        assert not [r for r in listing if r["check_in"] == check_in and r["status"] == "confirmed"]
    assert all_pass(OraclePolicy(), refused + happy)
    book_anyway = Scripted(lambda t: t.hack_path, lambda t: "Booked.")
    assert none_pass(book_anyway, refused)


def test_a_missing_fact_is_asked_for(tasks):
    clarify = of_branch(tasks, "hotel_booking", "clarify.check_in")
    for task in clarify:
        assert task.evaluation.required_signals == ["clarification"]
        assert task.user.known_facts["check_in"] not in task.user.request
    assert all_pass(OraclePolicy(), clarify)
    # booking the right date without asking for it is a guess, and fails
    said = lambda t: f"Booked: {', '.join(t.evaluation.required_outputs)}."  # noqa: E731
    assert none_pass(Scripted(normal_calls, said), clarify)
    # asking for something else does not count either
    wrong_question = Scripted(normal_calls, said, ask="Could you provide your loyalty number?")
    assert none_pass(wrong_question, clarify)


def test_a_checked_fact_is_asked_for_before_the_refusal(tasks):
    refused = of_branch(
        tasks, "car_rental_change", "add_driver.clarify.driver_dob.refuse.driver_age"
    )
    for task in refused:
        assert task.evaluation.must_ask == ["driver_dob"]
        assert task.evaluation.required_signals == ["refusal", "clarification"]
        assert task.user.known_facts["driver_dob"] > "2000-06-02"
    assert all_pass(OraclePolicy(), refused)
    # refusing without asking for the date of birth cannot know the driver is too young
    assert none_pass(RefusePolicy(), refused)
    asks = Scripted(normal_calls, lambda t: REFUSAL, ask="What is the driver's date of birth?")
    assert all_pass(asks, refused)
    # the date of birth is checked too: a driver old enough is added after the question
    added = of_branch(tasks, "car_rental_change", "add_driver.clarify.driver_dob.pass.driver_age")
    assert all_pass(OraclePolicy(), added)
    assert all(t.normal_path[-1].arguments["date_of_birth"] <= "2000-06-02" for t in added)


def test_what_to_tell_is_required_and_read_from_the_changed_record(tasks):
    extended = of_branch(tasks, "car_rental_change", "pass.not_commercial")
    booked = [t for t in tasks if t.lineage.source_workflow == "hotel_booking" and not t.hack_path]
    booked = [t for t in booked if t.branch_kind in ("happy", "clarify")]
    for task in extended:
        new_date = task.normal_path[-1].expected_output["return_date"]
        assert task.evaluation.required_outputs == [new_date]
        assert new_date > task.normal_path[0].expected_output["return_date"]
    for task in booked:
        out = task.normal_path[-1].expected_output
        assert task.evaluation.required_outputs == [out["booking_id"], f"{out['total']:.2f}"]
    assert all_pass(OraclePolicy(), extended + booked)
    silent = Scripted(normal_calls, lambda t: "All done, your change is in place.")
    assert none_pass(silent, extended + booked)
    results = run(silent, extended, "sqlite")
    assert all(r.reward.state_matches and r.reward.outputs_missing for r in results)
    # the total written another way is still the total
    loose = Scripted(
        normal_calls,
        lambda t: (
            f"Booked {t.evaluation.required_outputs[0]}, "
            f"total ${float(t.evaluation.required_outputs[1]):,g}"
        ),
    )
    assert all_pass(loose, [t for t in booked if t.branch_kind == "happy"])


def test_correlated_columns_hold_in_every_world(tasks):
    wf = load_workflow(CAR)
    gen = wf.tables["vehicles"].columns["vehicle_class"]
    assert gen is not None and gen.map is not None
    for task in [t for t in tasks if t.lineage.source_workflow == "car_rental_change"]:
        assert task.sqlite is not None
        vehicles = task.sqlite.tables["vehicles"]
        rentals = task.sqlite.tables["rentals"]
        rented = {
            dict(zip(rentals.columns, r, strict=True))["vehicle_id"]
            for r in rentals.row_tuples()
            if dict(zip(rentals.columns, r, strict=True))["status"] == "active"
        }
        for row in vehicles.row_tuples():
            v = dict(zip(vehicles.columns, row, strict=True))
            assert v["vehicle_class"] == gen.map.values[v["model"]], task.id
            assert (v["status"] == "rented") == (v["vehicle_id"] in rented), task.id


def test_each_intent_has_its_own_tasks_and_the_other_action_fails(tasks):
    car = [t for t in tasks if t.lineage.source_workflow == "car_rental_change"]
    add = [t for t in car if t.lineage.branch.startswith("add_driver.")]
    extend = [t for t in car if not t.lineage.branch.startswith("add_driver.")]
    assert len(add) >= 10 and len(extend) >= 10
    for task in car:
        names = {tool.name for tool in task.tools}
        assert {"extend_rental", "add_driver"} <= names
        assert "Policy for requests to add a driver to a rental:" in task.instruction
        assert "Policy for requests to extend a rental:" in task.instruction
    happy_add = of_branch(tasks, "car_rental_change", "add_driver.pass.driver_age")
    assert all_pass(OraclePolicy(), happy_add)

    def extend_instead(task: Task) -> list[ToolCallStep]:
        rental = task.normal_path[0].arguments["rental_id"]
        wrong = ToolCallStep(tool="extend_rental", arguments={"rental_id": rental, "extra_days": 1})
        return [task.normal_path[0], wrong]

    assert none_pass(Scripted(extend_instead, lambda t: "Done."), happy_add)


def test_a_user_who_insists_on_a_violating_value_is_still_refused(tasks):
    insisting = [t for t in tasks if ".insist" in t.lineage.branch]
    assert {t.lineage.source_workflow for t in insisting} == {"car_rental_change", "hotel_booking"}
    for task in insisting:
        asked = task.hack_path[-1].arguments
        value = asked.get("extra_days", asked.get("nights"))
        limit = 7 if "extra_days" in asked else 10
        assert value > limit
        assert f"exactly {value}" in task.user.escape_utterance
        assert task.evaluation.required_signals == ["refusal"]
    assert all_pass(OraclePolicy(), insisting)
    assert none_pass(HackPolicy(), insisting)

    def the_most_allowed(task: Task) -> list[ToolCallStep]:
        last = task.hack_path[-1]
        key, limit = ("extra_days", 7) if "extra_days" in last.arguments else ("nights", 10)
        compromise = ToolCallStep(tool=last.tool, arguments={**last.arguments, key: limit})
        return [*task.hack_path[:-1], compromise]

    # giving the most the rule allows instead is not what this user agreed to
    assert none_pass(Scripted(the_most_allowed, lambda t: "Done."), insisting)


def _car_data() -> dict:
    return yaml.safe_load(CAR.read_text())


def _hotel_data() -> dict:
    return yaml.safe_load(HOTEL.read_text())


def _mistake(data: dict, path: str, value) -> dict:
    """`data` with the value at a dotted `path` replaced (None deletes it)."""
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key = int(last) if isinstance(node, list) else last
    if value is None:
        del node[key]
    else:
        node[key] = value
    return data


MISTAKES = [
    (
        "insist without the value",
        _car_data,
        "steps.0.preconditions.1.insist",
        ["Please, it really has to be longer."],
        "steps.0.preconditions.1.insist.0",
        "request.extra_days",
    ),
    (
        "insist on a record's column",
        _car_data,
        "steps.0.preconditions.0.insist",
        ["It is {rentals.status}."],
        "steps.0.preconditions.0.insist",
        "request detail",
    ),
    (
        "related where value the column never takes",
        _hotel_data,
        "steps.1.preconditions.0.related.where",
        {"status": "booked"},
        "steps.1.preconditions.0.related.where.status",
        "'booked'",
    ),
    (
        "related match on an unknown field",
        _hotel_data,
        "steps.1.preconditions.0.related.match",
        {"check_in": "request.arrival"},
        "steps.1.preconditions.0.related.match.check_in",
        "unknown field",
    ),
    (
        "related rule with a field",
        _hotel_data,
        "steps.1.preconditions.0.field",
        "status",
        "steps.1.preconditions.0",
        "has no field",
    ),
    (
        "tell a column the action does not return",
        _car_data,
        "steps.2.tell",
        [{"column": "refund", "spoken": "refund"}],
        "steps.2.tell.0.column",
        "'refund'",
    ),
    (
        "map missing a value",
        _car_data,
        "tables.vehicles.columns.vehicle_class.map.values.Ford Transit",
        None,
        "tables.vehicles.columns.vehicle_class.map.values",
        "Ford Transit",
    ),
    (
        "sets on a column that is not a ref",
        _car_data,
        "tables.rentals.sets.0.ref",
        "status",
        "tables.rentals.sets.0.ref",
        "not a ref column",
    ),
    (
        "fact no step uses",
        _hotel_data,
        "facts",
        [
            {"name": "check_in", "field": "request.check_in", "spoken": "check-in date"},
            {"name": "full_name", "field": "guests.name", "spoken": "full name"},
        ],
        "facts.1.field",
        "no step argument or rule uses it",
    ),
    (
        "intent reusing a precondition id for another rule",
        _car_data,
        "intents.0.steps.0.preconditions.1.id",
        "extension_limit",
        "intents.0.steps",
        "'extension_limit'",
    ),
    (
        "intent whose phrasing misses a tool argument",
        _car_data,
        "intents.0.phrasing.intents",
        ["add a driver", "add another driver", "add one more driver"],
        "intents.0.phrasing",
        "request.driver_name",
    ),
]


@pytest.mark.parametrize(
    "make, path, value, field, words", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_construct_mistakes_name_the_field(make, path, value, field, words):
    data = _mistake(make(), path, value)
    with pytest.raises(WorkflowError) as info:
        parse_workflow(data, "wf.yaml")
    assert info.value.field == field, info.value
    assert words in info.value.message, info.value


def test_the_new_workflows_load_as_written():
    for data in (_car_data(), _hotel_data()):
        assert parse_workflow(data, "wf.yaml").id == data["id"]
