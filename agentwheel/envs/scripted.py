"""Scripted policies that read the task: the yardsticks that prove a reward can pass and fail.

- `oracle` asks for the facts the normal path needs that the request did not give
  (`facts_to_ask_for`), makes
  the normal path's calls one per turn, then closes (a refusal where one is required).
- `hack` refuses at first; once the user has pushed, it makes the hack path's calls.
- `refuse` declines everything, blind: it passes nothing, since a refusal counts only
  after the lookups that show why;
- `cautious` makes the lookups a decision rests on (`Task.evidence_keys`), then declines:
  the refuse floor a learned policy has to beat;
- `blind` (industrial tasks) submits the gold answer at once, without looking anything
  up: the "answer without looking" shortcut, which the evidence rule must fail.
- `distractor` (industrial tasks) follows the hack path at once: it reads the distractor
  and answers from it.
- `guess` makes the normal path's calls without asking the user anything: on a task
  whose request is ambiguous it answers what the user meant by luck, which must fail.
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


def calls_made(view: EpisodeView) -> int:
    return sum(len(m.tool_calls) for m in view.messages if m.role == "assistant")


def call_completion(step: ToolCallStep, index: int) -> Completion:
    call = ToolCall(id=f"scripted_{index}", name=step.tool, arguments=dict(step.arguments))
    return Completion(text=format_tool_call(step.tool, step.arguments), tool_calls=[call])


def say(text: str) -> Completion:
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
            return say(f"Could you please provide your {names}?")
        made = calls_made(view)
        steps = self.steps(task)
        if made < len(steps):
            return call_completion(steps[made], made)
        return say(self.closing(task))

    def steps(self, task: Task) -> list[ToolCallStep]:
        """The calls to make, one per turn (subclasses make others)."""
        return task.normal_path

    @staticmethod
    def closing(task: Task) -> str:
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
            return say(REFUSAL)
        made = calls_made(view)
        if made < len(view.task.hack_path):
            return call_completion(view.task.hack_path[made], made)
        return say("Done, I have processed it for you.")


class RefusePolicy:
    name = "refuse"

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [say(REFUSAL) for _ in views]


class CautiousPolicy(OraclePolicy):
    name = "cautious"

    def steps(self, task: Task) -> list[ToolCallStep]:
        return [s for s in task.normal_path if s.key() in task.evidence_keys()]

    @staticmethod
    def closing(task: Task) -> str:
        return REFUSAL


class BlindPolicy:
    name = "blind"

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [self._act_one(v) for v in views]

    @staticmethod
    def _act_one(view: EpisodeView) -> Completion:
        answer = [s for s in view.task.normal_path if s.tool == ANSWER_TOOL]
        if calls_made(view) == 0 and answer:
            return call_completion(answer[-1], 0)
        return say(DONE)


class DistractorPolicy:
    name = "distractor"

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [self._act_one(v) for v in views]

    @staticmethod
    def _act_one(view: EpisodeView) -> Completion:
        made = calls_made(view)
        if made < len(view.task.hack_path):
            return call_completion(view.task.hack_path[made], made)
        return say(DONE)


class GuessPolicy:
    name = "guess"

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [self._act_one(v) for v in views]

    @staticmethod
    def _act_one(view: EpisodeView) -> Completion:
        made = calls_made(view)
        if made < len(view.task.normal_path):
            return call_completion(view.task.normal_path[made], made)
        return say(DONE)


SCRIPTED_POLICIES: dict[str, Callable[[], Policy]] = {
    "oracle": OraclePolicy,
    "hack": HackPolicy,
    "refuse": RefusePolicy,
    "cautious": CautiousPolicy,
    "blind": BlindPolicy,
    "distractor": DistractorPolicy,
    "guess": GuessPolicy,
}
