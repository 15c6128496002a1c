"""Why an episode's final state is not the expected one: replay its calls and the task's
normal path on fresh environments and compare what each left behind.

The replay is checked against the state hash the episode recorded; when they disagree
(an off-script mock call that an LLM tool simulator answered, a task file changed since
the run) no rows are shown and the note says why, rather than show a diff of another run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from agentwheel.core.messages import Message
from agentwheel.core.task import Task, call_key
from agentwheel.envs.tools import Backend, SqliteTools, ToolBackend, make_backend
from agentwheel.envs.trajectory import Trajectory
from agentwheel.view.page_data import RowChange, StateDiff

MAX_ROWS_SHOWN = 50


def replay_calls(task: Task, backend: Backend, messages: Sequence[Message]) -> ToolBackend:
    """A fresh environment after the agent's tool calls, in the order it made them."""
    tools = make_backend(task, backend)
    for message in messages:
        if message.role != "assistant":
            continue
        for call in message.tool_calls:
            spec = task.tool(call.name)
            if spec is not None:  # an unknown tool changes nothing (the runner says so)
                tools.call(spec, call.arguments)
    return tools


def _normal_path_tools(task: Task, backend: Backend) -> ToolBackend:
    tools = make_backend(task, backend)
    for step in task.normal_path:
        spec = task.tool(step.tool)
        if spec is not None:
            tools.call(spec, step.arguments)
    return tools


def state_diff(task: Task, trajectory: Trajectory) -> StateDiff:
    """The actions and rows that differ between the normal path's state and the episode's."""
    backend = cast(Backend, trajectory.backend)
    final = replay_calls(task, backend, trajectory.messages)
    expected = _normal_path_tools(task, backend)
    try:
        if final.state_hash() != trajectory.reward.final_state:
            return StateDiff(
                note="replaying this episode's calls does not reach its recorded final state "
                "(an off-script call answered by a tool simulator, or the task changed)"
            )
        diff = StateDiff(
            missing_actions=[k for k in expected.ledger if k not in final.ledger],
            extra_actions=[k for k in final.ledger if k not in expected.ledger],
        )
        if isinstance(final, SqliteTools) and isinstance(expected, SqliteTools):
            diff.rows = changed_rows(task, expected.table_rows(), final.table_rows())
            if len(diff.rows) > MAX_ROWS_SHOWN:
                diff.note = f"first {MAX_ROWS_SHOWN} of {len(diff.rows)} differing rows"
                diff.rows = diff.rows[:MAX_ROWS_SHOWN]
        elif backend == "mock":
            diff.note = "mock back-end: the state is the list of actions that took effect"
        return diff
    finally:
        for tools in (final, expected):
            if isinstance(tools, SqliteTools):
                tools.close()


def changed_rows(
    task: Task, expected: dict[str, list[list[Any]]], final: dict[str, list[list[Any]]]
) -> list[RowChange]:
    """Rows present in one state and not the other, paired on the first column so a changed
    row shows as one line with both versions."""
    assert task.sqlite is not None
    changes: list[RowChange] = []
    for name, table in task.sqlite.tables.items():
        want, got = expected.get(name, []), final.get(name, [])
        only_expected = [r for r in want if r not in got]
        only_final = [r for r in got if r not in want]
        final_by_key = {_key(r): r for r in only_final}
        for row in only_expected:
            match = final_by_key.pop(_key(row), None)
            changes.append(RowChange(table=name, columns=table.columns, expected=row, final=match))
        changes += [
            RowChange(table=name, columns=table.columns, final=row)
            for row in only_final
            if _key(row) in final_by_key
        ]
    return changes


def _key(row: list[Any]) -> str:
    return repr(row[0]) if row else ""


class StateDiffs:
    """`state_diff` once per distinct episode: trials that made the same calls and reached
    the same state (common when many trials of one task fail alike) share one replay."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, ...], StateDiff] = {}

    def of(self, task: Task, trajectory: Trajectory) -> StateDiff:
        calls = [
            call_key(c.name, c.arguments)
            for m in trajectory.messages
            if m.role == "assistant"
            for c in m.tool_calls
        ]
        key = (task.id, trajectory.backend, trajectory.reward.final_state, *calls)
        if key not in self._seen:
            self._seen[key] = state_diff(task, trajectory)
        return self._seen[key]
