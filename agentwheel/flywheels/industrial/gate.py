"""The validation gate of industrial tasks: keep a question only if the careful path
passes and both shortcuts fail.

Checks, each a counted rejection reason (beside the agentic gate's own: `oracle_failed`,
`hack_passed`, `normal_path_error`):
- `not_findable`: a search step of the normal path does not return the page the next
  step opens (the question would need luck, not retrieval);
- `ungrounded_answer`: the gold answer appears in no output of the normal path;
- `blind_passed`: answering at once, without looking, passes;
- `unasked_passed`: an ambiguous request (it requires a clarifying question) is passed
  by making the careful calls without asking the user what they meant.

Kept tasks get every path step's expected output filled from their own world, so the
mock back-end replays them too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from agentwheel.core.rejection import Rejection
from agentwheel.core.task import Task
from agentwheel.envs.answer_check import output_holds_answer
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import BlindPolicy, GuessPolicy
from agentwheel.envs.tools import is_tool_error, replay
from agentwheel.envs.user import ScriptedUser
from agentwheel.flywheels.agentic.validate import ValidationReport, validate_tasks
from agentwheel.settings.runner import RunnerConfig

STAGE = "validate"


def _rejected(task: Task, reason: str, detail: str) -> Rejection:
    return Rejection(stage=STAGE, item=task.id, reason=reason, detail=detail)


def grounding_problem(task: Task) -> Rejection | None:
    """Why the normal path cannot find or support the answer, if it cannot (its outputs
    are kept as the steps' expected outputs)."""
    spec = task.evaluation.answer
    assert spec is not None and task.world_kind is not None
    _, outputs = replay(task, "normal", task.world_kind)
    for step, output in zip(task.normal_path, outputs, strict=True):
        step.expected_output = output
    for i, (step, output) in enumerate(zip(task.normal_path, outputs, strict=True)):
        if is_tool_error(output):
            return _rejected(task, "normal_path_error", f"step {i}: {output['detail']}")
        following = task.normal_path[i + 1] if i + 1 < len(task.normal_path) else None
        if step.tool == "search" and following is not None and following.tool == "open":
            found = {hit["doc_id"] for hit in output}
            if following.arguments["doc_id"] not in found:
                return _rejected(task, "not_findable", f"step {i}: {step.arguments} misses it")
    answers_seen = [json.dumps(o, default=str) for o in outputs[:-1]]
    if spec.kind != "absent" and not any(output_holds_answer(spec, o) for o in answers_seen):
        return _rejected(task, "ungrounded_answer", f"{spec.value!r} is in no output")
    return None


def fill_hack_outputs(task: Task) -> Task:
    """The hack path's expected outputs as the task's own world computes them (the normal
    path's were kept by `grounding_problem`)."""
    assert task.world_kind is not None
    _, outputs = replay(task, "hack", task.world_kind)
    for step, output in zip(task.hack_path, outputs, strict=True):
        step.expected_output = output
    return task


def gate_industrial(tasks: Sequence[Task]) -> ValidationReport:
    """Grounding, then the agentic gate (oracle passes, distractor path fails), then the
    blind shortcut fails. Kept tasks come back with their expected outputs filled."""
    rejected: list[Rejection] = []
    grounded = []
    for task in tasks:
        problem = grounding_problem(task)
        if problem is None:
            grounded.append(task)
        else:
            rejected.append(problem)
    report = validate_tasks(grounded)
    rejected.extend(report.rejected)
    specs = [EpisodeSpec(t) for t in report.kept]
    blind = EpisodeRunner(BlindPolicy(), ScriptedUser(), RunnerConfig()).run(specs)
    passed_blind = {t.task_id for t in blind if t.passed}
    ambiguous = [s for s in specs if "clarification" in s.task.evaluation.required_signals]
    guessed = EpisodeRunner(GuessPolicy(), ScriptedUser(), RunnerConfig()).run(ambiguous)
    passed_unasked = {t.task_id for t in guessed if t.passed}
    kept = []
    for task in report.kept:
        if task.id in passed_blind:
            rejected.append(_rejected(task, "blind_passed", "answering without looking passes"))
        elif task.id in passed_unasked:
            rejected.append(_rejected(task, "unasked_passed", "guessing what was meant passes"))
        else:
            kept.append(fill_hack_outputs(task))
    return ValidationReport(kept=kept, rejected=rejected)
