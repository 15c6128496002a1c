"""Hermes-style tool calls in model text: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`.

Parsing never raises: each block becomes a `ToolCall` or a typed `ToolCallError` that the
episode runner hands back to the agent as a tool message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from agentwheel.core.messages import ToolCall, ToolCallError
from agentwheel.core.task import ToolSpec

OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"
# A last block left open is still parsed: generation may stop on the end-of-turn token
# before the model writes the closing tag.
_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)

_JSON_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """The text a model writes to call a tool (what SFT targets and scripted policies emit)."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{OPEN_TAG}\n{body}\n{CLOSE_TAG}"


def split_tool_calls(text: str) -> tuple[str, list[str]]:
    """Split text into the prose outside tool-call blocks and the raw block bodies."""
    bodies = [m.group(1).strip() for m in _BLOCK.finditer(text)]
    prose = _BLOCK.sub("", text).strip()
    return prose, bodies


def validate_arguments(tool: ToolSpec, arguments: Any) -> str | None:
    """Why `arguments` do not fit the tool's schema, or None when they do."""
    if not isinstance(arguments, dict):
        return f"arguments must be a JSON object, got {type(arguments).__name__}"
    props = tool.properties
    unknown = sorted(set(arguments) - set(props))
    if unknown:
        return f"unknown argument(s) {unknown}; {tool.name} takes {sorted(props)}"
    missing = sorted(set(tool.required) - set(arguments))
    if missing:
        return f"missing required argument(s) {missing}"
    for name, value in arguments.items():
        expected = props[name].get("type", "string")
        check = _JSON_TYPE_CHECKS.get(expected)
        if check is not None and not check(value):
            return f"argument {name!r} must be {expected}, got {type(value).__name__} {value!r}"
        allowed = props[name].get("enum")
        if allowed is not None and value not in allowed:
            return f"argument {name!r} must be one of {allowed}, got {value!r}"
    return None


def parse_call_body(body: str, tools: Sequence[ToolSpec], call_id: str) -> ToolCall | ToolCallError:
    """Parse one block body (or an OpenAI `function` payload serialised the same way)."""
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        return ToolCallError(kind="malformed_json", detail=f"invalid JSON: {exc.msg}", raw=body)
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        return ToolCallError(
            kind="missing_name",
            detail='a tool call needs {"name": ..., "arguments": {...}}',
            raw=body,
        )
    return check_call(payload["name"], payload.get("arguments", {}), tools, call_id, raw=body)


def check_call(
    name: str, arguments: Any, tools: Sequence[ToolSpec], call_id: str, raw: str = ""
) -> ToolCall | ToolCallError:
    """Validate a call's tool name and arguments against the available tools."""
    tool = next((t for t in tools if t.name == name), None)
    if tool is None:
        known = ", ".join(t.name for t in tools)
        return ToolCallError(
            kind="unknown_tool",
            detail=f"no tool named {name!r}; tools: {known}",
            raw=raw,
            tool=name,
        )
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return ToolCallError(
                kind="malformed_json",
                detail=f"arguments are not JSON: {exc.msg}",
                raw=raw,
                tool=name,
            )
    problem = validate_arguments(tool, arguments)
    if problem is not None:
        return ToolCallError(kind="bad_arguments", detail=problem, raw=raw, tool=name)
    return ToolCall(id=call_id, name=name, arguments=arguments)


def parse_tool_calls(
    text: str, tools: Sequence[ToolSpec], id_prefix: str = "call"
) -> tuple[str, list[ToolCall], list[ToolCallError]]:
    """Parse every tool-call block in `text`: (prose, valid calls, errors)."""
    prose, bodies = split_tool_calls(text)
    calls: list[ToolCall] = []
    errors: list[ToolCallError] = []
    for i, body in enumerate(bodies):
        result = parse_call_body(body, tools, f"{id_prefix}_{i}")
        if isinstance(result, ToolCall):
            calls.append(result)
        else:
            errors.append(result)
    return prose, calls, errors
