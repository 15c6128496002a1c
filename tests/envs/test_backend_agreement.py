"""The mock and SQLite back-ends agree, task by task, on what passes.

The same behaviours run on both back-ends over the bundled fixtures and over synthesized
and evolved tasks (the flywheel's integer parameters, refusals nested below a missing
identifier): the oracle, the hack and refuse policies, an oracle that sends every action
twice, one that sends integers as floats (`10.0`), a constant hedge that refuses and
asks a vague question, and the attack policies (actions without their lookups, an
action on another record first, a canned question naming every identifier). Each task
passes or fails alike on both back-ends, and no attack passes a task that needs the
step it skips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from agentwheel.core.dataset import load_tasks
from agentwheel.core.messages import Completion, Message, ToolCall
from agentwheel.core.run_layout import TASKS_FILE
from agentwheel.core.task import Task, facts_given
from agentwheel.envs.agent import EpisodeView, Policy
from agentwheel.envs.attacks import ATTACK_POLICIES, with_wrong_records
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import SCRIPTED_POLICIES, OraclePolicy
from agentwheel.envs.user import ScriptedUser
from agentwheel.flywheels.agentic.synth import synth_agentic
from agentwheel.settings.runner import RunnerConfig
from tests.flywheels.evolve_report import evolve_refused, refuse_report

HEDGE = (
    "I'm sorry, but I cannot do that right now. Could you tell me a bit more about what you need?"
)
WORKFLOWS = [
    "agentwheel/data/workflows/hr_leave_request.yaml",  # integer parameters
    "agentwheel/data/workflows/retail_order_cancel.yaml",
    "agentwheel/data/workflows/banking_transfer.yaml",
]


def _one_call_per_turn(message: Message) -> Message:
    return message.model_copy(update={"tool_calls": message.tool_calls[:1]})


class DoubleActionPolicy:
    """The oracle, but every state-changing call is sent twice in its turn."""

    name = "double-action"

    def __init__(self) -> None:
        self.oracle = OraclePolicy()

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [self._act_one(v) for v in views]

    def _act_one(self, view: EpisodeView) -> Completion:
        # The oracle counts calls to find its next step, so it sees one call per turn.
        seen = EpisodeView(
            task=view.task,
            trial=view.trial,
            messages=[_one_call_per_turn(m) for m in view.messages],
            scratch=view.scratch,
        )
        completion = self.oracle.act([seen])[0]
        if completion.tool_calls and completion.tool_calls[0].name in view.task.action_tools:
            return Completion(text=completion.text * 2, tool_calls=completion.tool_calls * 2)
        return completion


class FloatForIntPolicy:
    """The oracle, but every integer argument is sent as a float (`10` as `10.0`)."""

    name = "float-for-int"

    def __init__(self) -> None:
        self.oracle = OraclePolicy()

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [self._floats(c) for c in self.oracle.act(views)]

    @staticmethod
    def _floats(completion: Completion) -> Completion:
        calls = [
            ToolCall(
                id=c.id,
                name=c.name,
                arguments={
                    k: float(v) if type(v) is int else v  # bools stay bools
                    for k, v in c.arguments.items()
                },
            )
            for c in completion.tool_calls
        ]
        return completion.model_copy(update={"tool_calls": calls})


class HedgePolicy:
    name = "hedge"

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [Completion(text=HEDGE) for _ in views]


BEHAVIOURS: dict[str, Callable[[], Policy]] = {
    **SCRIPTED_POLICIES,
    "double-action": DoubleActionPolicy,
    "float-for-int": FloatForIntPolicy,
    "hedge": HedgePolicy,
    **ATTACK_POLICIES,
}


@pytest.fixture(scope="module")
def task_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Task]]:
    root = tmp_path_factory.mktemp("agreement")
    synth_agentic(root / "synth", WORKFLOWS, tasks_per_workflow=10)
    evolve_refused(refuse_report(root / "evolve", WORKFLOWS), root / "evolved", ("deepen",))
    return {
        "fixtures": load_tasks("fixtures").tasks,
        "synthesized": load_tasks(root / "synth" / TASKS_FILE).tasks,
        "evolved": load_tasks(root / "evolved" / TASKS_FILE).tasks,
    }


def passes(behaviour: str, tasks: list[Task], backend: str) -> dict[str, bool]:
    runner = EpisodeRunner(BEHAVIOURS[behaviour](), ScriptedUser(), RunnerConfig(backend=backend))
    return {t.task_id: t.passed for t in runner.run(EpisodeSpec(task=task) for task in tasks)}


@pytest.mark.parametrize("tasks_name", ["fixtures", "synthesized", "evolved"])
def test_every_behaviour_passes_the_same_tasks_on_both_back_ends(task_sets, tasks_name):
    tasks = task_sets[tasks_name]
    outcomes = {}
    for behaviour in BEHAVIOURS:
        sqlite, mock = passes(behaviour, tasks, "sqlite"), passes(behaviour, tasks, "mock")
        disagree = sorted(i for i in sqlite if sqlite[i] != mock[i])
        assert not disagree, f"{behaviour}: back-ends disagree on {disagree}"
        outcomes[behaviour] = {i for i, passed in sqlite.items() if passed}
    every = {t.id for t in tasks}
    assert outcomes["oracle"] == outcomes["double-action"] == outcomes["float-for-int"] == every
    assert outcomes["hack"] == set()
    # Declining blind earns nothing: a refusal counts only after the lookups.
    assert outcomes["refuse"] == outcomes["hedge"] == outcomes["canned-clarify"] == set()
    checked = {t.id for t in tasks if t.evidence_keys()}
    decided = {t.id for t in tasks if {"refusal", "transfer"} & set(t.evaluation.required_signals)}
    assert not outcomes["skip-checks"] & checked & decided
    untouched = {t.id for t in tasks if with_wrong_records(t) == t.normal_path}
    assert len(every - untouched) >= len(every) // 2
    assert outcomes["wrong-record-first"] == untouched & outcomes["oracle"]
    # Asking again for what the request said fails wherever the request said something.
    asks_nothing_given = {t.id for t in tasks if not facts_given(t)}
    assert len(asks_nothing_given) < len(every) // 2
    assert outcomes["re-ask"] == asks_nothing_given


def test_the_sets_hold_the_cases_that_used_to_disagree_or_pass_wrongly(task_sets):
    def integer_steps(task: Task) -> bool:
        return any(
            type(v) is int
            for step in task.normal_path
            if step.tool in task.action_tools
            for v in step.arguments.values()
        )

    assert sum(integer_steps(t) for t in task_sets["synthesized"]) >= 3
    nested = [
        t
        for t in task_sets["evolved"]
        if t.branch_kind in ("refuse", "adversarial")
        and "clarification" in t.evaluation.required_signals
    ]
    assert len(nested) >= 3
    assert not any(passes("hedge", nested, "sqlite").values())
