"""Attack policies: scripted behaviours a reward must fail, kept beside the yardsticks.

Each is what a policy-gradient learner could find if the reward let it:
- `skip-checks` makes the normal path's actions (a hand-off included) without the
  lookups before them, then closes as the oracle does (a refusal where one is required);
- `wrong-record-first` is the oracle, but before each action it runs the same action on
  another existing record of the task's world (another order, another booking);
- `canned-clarify` sends one constant reply that declines and asks for every identifier
  a business might use;
- `re-ask` is the oracle, but it opens by asking for the facts the request already gave
  (the habit of asking first, whatever the user said).
`agentwheel eval --policy <name>` runs them on any task set; a sound reward passes none
of the tasks that need the step they skip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agentwheel.core.messages import Completion
from agentwheel.core.task import Task, ToolCallStep, facts_given
from agentwheel.envs.agent import EpisodeView, Policy
from agentwheel.envs.scripted import OraclePolicy, say
from agentwheel.envs.signals import COMMON_IDENTIFIERS

CANNED_CLARIFY = (
    "I'm sorry, I cannot do that yet. Could you give me your "
    + ", ".join(COMMON_IDENTIFIERS[:-1])
    + f" and {COMMON_IDENTIFIERS[-1]}?"
)


class SkipChecksPolicy(OraclePolicy):
    name = "skip-checks"

    def steps(self, task: Task) -> list[ToolCallStep]:
        return [s for s in task.normal_path if s.tool in task.action_tools]


class WrongRecordFirstPolicy(OraclePolicy):
    name = "wrong-record-first"

    def steps(self, task: Task) -> list[ToolCallStep]:
        return with_wrong_records(task)


def with_wrong_records(task: Task) -> list[ToolCallStep]:
    """The normal path with, before each action, the same action on another record."""
    plan: list[ToolCallStep] = []
    for step in task.normal_path:
        if step.tool in task.action_tools:
            other = _other_record_arguments(task, step.arguments)
            if other is not None:
                plan.append(ToolCallStep(tool=step.tool, arguments=other))
        plan.append(step)
    return plan


def _other_record_arguments(task: Task, arguments: dict[str, Any]) -> dict[str, Any] | None:
    """The arguments with one identifier swapped for another row's value in the column
    that holds it (None when the task has no world or no other row)."""
    if task.sqlite is None:
        return None
    for name, value in arguments.items():
        for table in task.sqlite.tables.values():
            rows = [dict(zip(table.columns, r, strict=True)) for r in table.row_tuples()]
            for column in table.columns:
                column_values = [row[column] for row in rows]
                others = [v for v in column_values if v != value and isinstance(v, type(value))]
                if value in column_values and others and column_values.count(value) == 1:
                    return {**arguments, name: others[0]}
    return None


class ReAskPolicy(OraclePolicy):
    name = "re-ask"

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [self._ask_again_first(v) for v in views]

    def _ask_again_first(self, view: EpisodeView) -> Completion:
        given = facts_given(view.task)
        if not given or view.scratch.get("asked_again"):
            return self._act_one(view)
        view.scratch["asked_again"] = True
        names = " and ".join(f.replace("_", " ") for f in given)
        return say(f"Before I start, could you tell me your {names}?")


class CannedClarifyPolicy:
    name = "canned-clarify"

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [say(CANNED_CLARIFY) for _ in views]


ATTACK_POLICIES: dict[str, Callable[[], Policy]] = {
    "skip-checks": SkipChecksPolicy,
    "wrong-record-first": WrongRecordFirstPolicy,
    "canned-clarify": CannedClarifyPolicy,
    "re-ask": ReAskPolicy,
}
