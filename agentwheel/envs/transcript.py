"""Reading an episode's tool calls back from its transcript: which call ran, in what
order, with what outcome. The reward reads the transcript, not a back-end's memory, so
the mock and SQLite back-ends are judged by the same facts."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentwheel.core.messages import Message, ToolCallError
from agentwheel.core.task import Task, ToolKind, call_key
from agentwheel.envs.tools import NOT_RUN_ERRORS, is_tool_error
from agentwheel.llm.tool_calls import prepare_arguments


@dataclass(frozen=True)
class ToolEvent:
    """One tool call and its result. `position` is the index of the result message."""

    position: int
    tool: str
    kind: ToolKind
    key: str
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ran(self) -> bool:
        """The back-end ran the call (it was not turned away before running)."""
        return self.error not in NOT_RUN_ERRORS


def tool_events(task: Task, messages: Sequence[Message]) -> list[ToolEvent]:
    """Every call to one of the task's tools, in the order its result arrived."""
    calls = {call.id: call for m in messages if m.role == "assistant" for call in m.tool_calls}
    events = []
    for position, message in enumerate(messages):
        call = calls.get(message.tool_call_id or "") if message.role == "tool" else None
        spec = task.tool(call.name) if call is not None else None
        if call is None or spec is None:
            continue
        prepared = prepare_arguments(spec, call.arguments)
        arguments = call.arguments if isinstance(prepared, ToolCallError) else prepared
        key = call_key(spec.name, arguments)
        events.append(
            ToolEvent(position, spec.name, spec.kind, key, tool_error_kind(message.content))
        )
    return events


def tool_error_kind(content: str) -> str | None:
    """The error kind of a tool message's content (None: the call succeeded)."""
    try:
        output = json.loads(content)
    except ValueError:
        return None
    return str(output["error"]) if is_tool_error(output) else None


def evidence_read_at(task: Task, events: Sequence[ToolEvent]) -> int | None:
    """Where in the transcript the agent had read every record its decision rests on (the
    normal path's lookups before its first action, `Task.evidence_keys`): -1 when the
    task needs none, None when it never read them all."""
    missing = set(task.evidence_keys())
    if not missing:
        return -1
    for event in events:
        if event.ok and event.kind == "query":
            missing.discard(event.key)
            if not missing:
                return event.position
    return None


def actions_off_path(task: Task, events: Sequence[ToolEvent]) -> list[str]:
    """State-changing calls the back-end ran that the normal path does not make: an action
    on another record fails on both back-ends, whether or not it changed a row there."""
    normal = {step.key() for step in task.normal_path}
    return [e.key for e in events if e.kind == "action" and e.ran and e.key not in normal]


def says_before_first_action(
    task: Task, messages: Sequence[Message], says: Callable[[str], bool]
) -> bool:
    """Whether an agent message before the agent's first call of an action tool (or in a
    transcript without one) has text for which `says` holds."""
    actions = task.action_tools
    for message in messages:
        if message.role != "assistant":
            continue
        if says(message.content):
            return True
        if any(call.name in actions for call in message.tool_calls):
            return False
    return False
