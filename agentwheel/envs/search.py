"""The search world: `search(query, k)`, `open(doc_id)`, `calculator(expression)` over a
document collection, and `submit_answer`.

The index (agentwheel/envs/search_index.py) is built once per collection and shared by
every episode; the tools only read it, so episodes cannot disturb each other. Over a live
search service (`api:<config.yaml>`, agentwheel/envs/search_api.py) `open` fetches only
urls that a search of the same episode returned, so a model cannot make the host fetch
an address of its choosing; a failed request is an `api_error` for the agent.
"""

from __future__ import annotations

from typing import Any

from agentwheel.core.industrial import SearchWorld
from agentwheel.core.task import ToolSpec
from agentwheel.envs.calculator import CalculatorError, calculate, format_number
from agentwheel.envs.search_index import DEFAULT_K, MAX_K, CollectionError, load_collection
from agentwheel.envs.tools import tool_error
from agentwheel.envs.worlds import SUBMIT_ANSWER, AnswerTools

SEARCH = ToolSpec(
    name="search",
    description=(
        f"Full-text search of the document collection. Returns up to k (default {DEFAULT_K},"
        f" at most {MAX_K}) documents, best first, each with its doc_id, title and a snippet."
    ),
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "Words to look for."},
            "k": {"type": "integer", "description": "How many results."},
        },
        "required": ["query"],
    },
    kind="query",
)
OPEN = ToolSpec(
    name="open",
    description="Open a document by its doc_id and read its whole text.",
    parameters={
        "type": "object",
        "properties": {"doc_id": {"type": "string", "description": "A doc_id from search."}},
        "required": ["doc_id"],
    },
    kind="query",
)
CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate an arithmetic expression: numbers, + - * / // % ** and parentheses.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. 1200 + 35*4"}},
        "required": ["expression"],
    },
    kind="query",
)
SEARCH_TOOLS = [SEARCH, OPEN, CALCULATOR, SUBMIT_ANSWER]


class SearchTools(AnswerTools):
    def __init__(self, world: SearchWorld):
        super().__init__()
        self._index = load_collection(world.collection)
        self._found: set[str] = set()  # doc_ids the episode's searches returned

    def _query(self, tool: ToolSpec, arguments: dict[str, Any]) -> Any:
        try:
            return self._read(tool, arguments)
        except CollectionError as exc:
            return tool_error("api_error", str(exc))

    def _read(self, tool: ToolSpec, arguments: dict[str, Any]) -> Any:
        if tool.name == "search":
            k = arguments.get("k", DEFAULT_K)
            if not 1 <= k <= MAX_K:
                return tool_error("bad_arguments", f"k must be between 1 and {MAX_K}, got {k}")
            hits = self._index.search(arguments["query"], k)
            self._found.update(h.doc_id for h in hits)
            return [h.model_dump() for h in hits]
        if tool.name == "open":
            doc_id = arguments["doc_id"]
            if self._index.remote and doc_id not in self._found:
                return tool_error("not_found", f"{doc_id!r} is not a url from your searches")
            document = self._index.get(doc_id)
            if document is None:
                return tool_error("not_found", f"no document {doc_id!r}")
            return document.model_dump()
        if tool.name == "calculator":
            try:
                return {"result": format_number(calculate(arguments["expression"]))}
            except CalculatorError as exc:
                return tool_error("bad_arguments", str(exc))
        return tool_error("unknown_tool", f"the search world has no tool {tool.name!r}")
