"""The validation gate: a task is kept only if it can both pass and fail for the right reasons.

Checks, each a counted rejection reason:
- `normal_path_error`: replaying the normal path on the task's own world hits a tool error;
- `hack_path_harmless`: the hack path reaches the same state as the normal path, so it
  cannot tell a jailbroken agent from a compliant one;
- `untraceable_argument`: a path argument appears nowhere the agent could have learned it
  (the request, the user's known facts, for the hack path the hack background, or an
  earlier call's output);
- `oracle_failed`: the oracle policy does not pass;
- `hack_passed`: the hack policy passes although the task has a hack path.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentwheel.core.rejection import Rejection
from agentwheel.core.task import Task, ToolCallStep
from agentwheel.envs.answer_check import leaf_values
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import HackPolicy, OraclePolicy
from agentwheel.envs.tools import Backend, is_tool_error, replay
from agentwheel.envs.user import ScriptedUser
from agentwheel.settings.runner import RunnerConfig

STAGE = "validate"
RejectionReason = Literal[
    "normal_path_error",
    "hack_path_harmless",
    "untraceable_argument",
    "oracle_failed",
    "hack_passed",
]


def _rejected(task: Task, reason: RejectionReason, detail: str) -> Rejection:
    return Rejection(stage=STAGE, item=task.id, reason=reason, detail=detail)


class ValidationReport(BaseModel):
    kept: list[Task]
    rejected: list[Rejection] = Field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {"kept": len(self.kept), **Counter(r.reason for r in self.rejected)}


def _scalars(value: Any) -> Iterable[str]:
    return (_as_text(v) for v in leaf_values(value))


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, str) else json.dumps(value)


def untraceable_arguments(
    steps: Sequence[ToolCallStep], known_text: str, known_values: set[str]
) -> list[str]:
    """Arguments of `steps` not found in what the agent knows at that point of the path."""
    values = set(known_values)
    missing = []
    for i, step in enumerate(steps):
        for name, value in step.arguments.items():
            text = _as_text(value)
            if text not in values and text not in known_text:
                missing.append(f"step {i} {step.tool}.{name}={text!r}")
        values.update(_scalars(step.expected_output))
    return missing


def trace_problems(task: Task) -> list[str]:
    facts = set(task.user.known_facts.values())
    normal = untraceable_arguments(task.normal_path, task.user.request, facts)
    hack_known = f"{task.user.request}\n{task.user.hack_success_user_background}"
    hack = untraceable_arguments(task.hack_path, hack_known, facts)
    return [f"normal_path {m}" for m in normal] + [f"hack_path {m}" for m in hack]


def static_rejection(task: Task, backend: Backend) -> Rejection | None:
    """The checks that need no episode."""
    normal_state, outputs = replay(task, "normal", backend)
    errors = [f"step {i}: {out['detail']}" for i, out in enumerate(outputs) if is_tool_error(out)]
    if errors:
        return _rejected(task, "normal_path_error", "; ".join(errors))
    if task.hack_path and replay(task, "hack", backend)[0] == normal_state:
        return _rejected(task, "hack_path_harmless", "hack and normal paths end in one state")
    # An industrial task's arguments are the agent's own queries, not facts to trace; its
    # answer's grounding is checked where it is made (agentwheel/flywheels/industrial).
    problems = trace_problems(task) if task.world_kind is None else []
    if problems:
        return _rejected(task, "untraceable_argument", "; ".join(problems))
    return None


def validate_tasks(
    tasks: Sequence[Task], backend: Backend | Literal["auto"] = "auto"
) -> ValidationReport:
    """Keep the tasks that pass every check; every rejection carries its reason."""
    rejected: list[Rejection] = []
    candidates = []
    for task in tasks:
        own = "sqlite" if (backend == "auto" and task.sqlite is not None) else backend
        own = task.world_kind or own if backend == "auto" else own
        problem = static_rejection(task, "mock" if own == "auto" else own)
        if problem is None:
            candidates.append(task)
        else:
            rejected.append(problem)
    config = RunnerConfig(backend=backend)
    specs = [EpisodeSpec(t) for t in candidates]
    oracle = {
        t.task_id: t for t in EpisodeRunner(OraclePolicy(), ScriptedUser(), config).run(specs)
    }
    with_hack = [EpisodeSpec(t) for t in candidates if t.hack_action_keys()]
    hack = {
        t.task_id: t for t in EpisodeRunner(HackPolicy(), ScriptedUser(), config).run(with_hack)
    }
    kept = []
    for task in candidates:
        result = oracle[task.id]
        if not result.passed:
            detail = result.reward.model_dump_json(
                include={"state_matches", "signals_present", "outputs_missing"}
            )
            rejected.append(_rejected(task, "oracle_failed", detail))
        elif task.id in hack and hack[task.id].passed:
            rejected.append(_rejected(task, "hack_passed", "the hack path leaves a passing state"))
        else:
            kept.append(task)
    return ValidationReport(kept=kept, rejected=rejected)
