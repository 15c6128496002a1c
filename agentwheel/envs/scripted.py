"""Scripted policies that read the task: the yardsticks that prove a reward can pass and fail.

- `oracle` asks for the facts the normal path needs that the request did not give
  (`facts_to_ask_for`), makes
  the normal path's calls one per turn, then closes (a refusal where one is required).
- `hack` refuses at first; once the user has pushed, it makes the hack path's calls.
- `refuse` declines everything.
- `blind` (industrial tasks) submits the gold answer at once, without looking anything
  up: the "answer without looking" shortcut, which the evidence rule must fail.
- `distractor` (industrial tasks) follows the hack path at once: it reads the distractor
  and answers from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agentwheel.core.industrial import ANSWER_TOOL
from agentwheel.core.messages import Completion, ToolCall
from agentwheel.core.task import Task, ToolCallStep, facts_to_ask_for
from agentwheel.envs.agent import EpisodeView, Policy
from agentwheel.envs.user import has_pushed
from agentwheel.llm.tool_calls import format_tool_call

REFUSAL = "I'm sorry, but I can't do that: our policy does not allow it."
TRANSFERRED = "I have transferred you to a human agent who will take it from here."
DONE = "All done."


def _calls_made(view: EpisodeView) -> int:
    return sum(len(m.tool_calls) for m in view.messages if m.role == "assistant")


def _call(step: ToolCallStep, index: int) -> Completion:
    call = ToolCall(id=f"scripted_{index}", name=step.tool, arguments=dict(step.arguments))
    return Completion(text=format_tool_call(step.tool, step.arguments), tool_calls=[call])


def _say(text: str) -> Completion:
    return Completion(text=text)


class OraclePolicy:
    name = "oracle"

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [self._act_one(v) for v in views]

    def _act_one(self, view: EpisodeView) -> Completion:
        task = view.task
        missing = facts_to_ask_for(task)
        heard = " ".join(m.content for m in view.messages if m.role == "user")
        if (
            missing
            and not view.scratch.get("asked")
            and any(task.user.known_facts[f] not in heard for f in missing)
        ):
            view.scratch["asked"] = True
            names = ", ".join(f.replace("_", " ") for f in missing)
            return _say(f"Could you please provide your {names}?")
        made = _calls_made(view)
        if made < len(task.normal_path):
            return _call(task.normal_path[made], made)
        return _say(self._closing(task))

    @staticmethod
    def _closing(task: Task) -> str:
        required = task.evaluation.required_signals
        if "refusal" in required:
            return REFUSAL
        outputs = " ".join(task.evaluation.required_outputs)
        if "transfer" in required:
            return f"{TRANSFERRED} {outputs}".strip()
        return f"{DONE} {outputs}".strip()


class HackPolicy:
    name = "hack"

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [self._act_one(v) for v in views]

    @staticmethod
    def _act_one(view: EpisodeView) -> Completion:
        if not has_pushed(view):
            return _say(REFUSAL)
        made = _calls_made(view)
        if made < len(view.task.hack_path):
            return _call(view.task.hack_path[made], made)
        return _say("Done, I have processed it for you.")


class RefusePolicy:
    name = "refuse"

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [_say(REFUSAL) for _ in views]


class BlindPolicy:
    name = "blind"

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [self._act_one(v) for v in views]

    @staticmethod
    def _act_one(view: EpisodeView) -> Completion:
        answer = [s for s in view.task.normal_path if s.tool == ANSWER_TOOL]
        if _calls_made(view) == 0 and answer:
            return _call(answer[-1], 0)
        return _say(DONE)


class DistractorPolicy:
    name = "distractor"

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [self._act_one(v) for v in views]

    @staticmethod
    def _act_one(view: EpisodeView) -> Completion:
        made = _calls_made(view)
        if made < len(view.task.hack_path):
            return _call(view.task.hack_path[made], made)
        return _say(DONE)


SCRIPTED_POLICIES: dict[str, Callable[[], Policy]] = {
    "oracle": OraclePolicy,
    "hack": HackPolicy,
    "refuse": RefusePolicy,
    "blind": BlindPolicy,
    "distractor": DistractorPolicy,
}
