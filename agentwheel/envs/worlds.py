"""Tool back-ends of the industrial worlds (search, analysis): what they share.

Each is a `ToolBackend` like `MockTools` and `SqliteTools`: argument checks, the ledger
and the duplicate-action rule come from the same base. What they add in common is the
answer tool: `submit_answer` is the one state-changing call, taken once per episode (a
second, different answer is refused, so an agent cannot try every candidate), and the
state hash is that of the ledger, i.e. of the answer given.
"""

from __future__ import annotations

from typing import Any

from agentwheel.core.industrial import ANSWER_TOOL, WorldKind
from agentwheel.core.task import Task, ToolSpec
from agentwheel.envs.tools import ToolBackend, _digest, _LedgerTools, tool_error

SUBMIT_ANSWER = ToolSpec(
    name=ANSWER_TOOL,
    description=(
        "Submit your final answer (once; it cannot be changed). Give only the answer: a"
        " name, a number, or items separated by commas; 'not in the data' if the data"
        " does not hold it."
    ),
    parameters={
        "type": "object",
        "properties": {"answer": {"type": "string", "description": "The final answer."}},
        "required": ["answer"],
    },
    kind="action",
)


class AnswerTools(_LedgerTools):
    """The answer tool and the state; subclasses add their query tools in `_query`."""

    def _run(self, tool: ToolSpec, arguments: dict[str, Any], key: str) -> Any:
        if tool.name == ANSWER_TOOL:
            if any(k.startswith(f"{ANSWER_TOOL}:") for k in self.ledger):
                return tool_error("duplicate_action", "an answer was already submitted")
            return {"status": "recorded", "answer": arguments.get("answer", "")}
        return self._query(tool, arguments)

    def _query(self, tool: ToolSpec, arguments: dict[str, Any]) -> Any:
        raise NotImplementedError

    def state_hash(self) -> str:
        return _digest(sorted(self.ledger))


def world_backend(task: Task, kind: WorldKind) -> ToolBackend:
    """The back-end of an industrial task's own world."""
    if kind == "search":
        from agentwheel.envs.search import SearchTools

        assert task.search is not None
        return SearchTools(task.search)
    from agentwheel.envs.analysis import AnalysisTools

    assert task.analysis is not None
    return AnalysisTools(task.analysis)
