"""Hermes-style tool calls in model text: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`.

Parsing never raises: each block becomes a `ToolCall` or a typed `ToolCallError` that the
episode runner hands back to the agent as a tool message. What a model writes is bounded
before it is decoded (the limits below), so no reply can exhaust the parser, the
database or the transcript.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from agentwheel.core.messages import ToolCall, ToolCallError, ToolCallErrorKind
from agentwheel.core.task import SQLITE_INTEGERS, ToolSpec

OPEN_TAG = "<tool_call>"
CLOSE_TAG = "</tool_call>"

# Bounds on model output. A legitimate call is a few hundred characters two levels deep
# (a tool takes at most 3 scalar arguments), so each bound sits far above real use and
# far below what breaks something.
MAX_REPLY_CHARS = 64_000
"""Characters of one reply that are parsed and stored: ~16k tokens, above any per-turn
generation budget we sample with; a 30 MB reply used to be stored verbatim."""
MAX_CALLS_PER_REPLY = 16
"""Tool calls run per reply; each runs against the database and adds a message."""
MAX_CALL_CHARS = 8_000
"""Characters of one call body (name and arguments as JSON)."""
MAX_ARGUMENT_CHARS = 1_000
"""Characters of one string argument: ids, dates, names, a short reason."""
MAX_JSON_DEPTH = 8
"""Nesting of `[` / `{` in a call; Python's JSON decoder recurses and a ~1,000-deep body
raised RecursionError."""

# A last block left open is still parsed: generation may stop on the end-of-turn token
# before the model writes the closing tag.
_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_PREVIEW_CHARS = 80
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

_JSON_TYPE_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


class ModelJsonError(ValueError):
    """JSON a model wrote that is malformed or past a bound; `kind` is how it is reported."""

    def __init__(self, kind: ToolCallErrorKind, detail: str):
        super().__init__(detail)
        self.kind = kind


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """The text a model writes to call a tool (what SFT targets and scripted policies emit)."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{OPEN_TAG}\n{body}\n{CLOSE_TAG}"


def utf8_safe(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD: a JSON escape such as `\\ud800`
    decodes to one, and no UTF-8 file (a trace, a dataset) can hold it."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def cap_reply(text: str) -> str:
    """What of a model's reply is parsed and stored: its first `MAX_REPLY_CHARS`
    characters, made `utf8_safe`."""
    return utf8_safe(text[:MAX_REPLY_CHARS])


def split_tool_calls(text: str) -> tuple[str, list[str]]:
    """Split text (capped to `MAX_REPLY_CHARS`) into the prose outside tool-call blocks
    and the raw block bodies."""
    text = cap_reply(text)
    bodies = [m.group(1).strip() for m in _BLOCK.finditer(text)]
    prose = _BLOCK.sub("", text).strip()
    return prose, bodies


def json_depth(text: str) -> int:
    """How deep `[` and `{` nest in `text`, not counting those inside JSON strings."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    raise ModelJsonError("malformed_json", f"{name} is not a JSON number")


def load_model_json(text: str, max_chars: int = MAX_CALL_CHARS) -> Any:
    """Decode JSON a model wrote, within the bounds; raises only `ModelJsonError`."""
    if len(text) > max_chars:
        raise ModelJsonError("over_limit", f"{len(text)} characters, over {max_chars}")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ModelJsonError("over_limit", f"nested {depth} deep, over {MAX_JSON_DEPTH}")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ModelJsonError("malformed_json", f"invalid JSON: {exc.msg}") from None
    except ModelJsonError:
        raise
    except ValueError as exc:  # e.g. an integer past Python's 4,300-digit conversion limit
        raise ModelJsonError("over_limit", _clip(str(exc))) from None


def _clip(text: str, limit: int = _PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _preview(value: Any) -> str:
    """A short, safe rendering of a value for an error detail (never a huge or deep repr)."""
    if isinstance(value, str):
        return repr(_clip(value))
    if isinstance(value, bool | float) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value in SQLITE_INTEGERS else "an integer out of range"
    return f"a {type(value).__name__}"


def _scalar_problem(name: str, value: Any) -> tuple[ToolCallErrorKind, str] | None:
    """A bound a scalar argument breaks, whatever its declared type."""
    if isinstance(value, str):
        if len(value) > MAX_ARGUMENT_CHARS:
            return (
                "over_limit",
                f"argument {name!r} has {len(value)} characters, over {MAX_ARGUMENT_CHARS}",
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "bad_arguments", f"argument {name!r} is not valid unicode (a lone surrogate)"
    # An int past SQLite's range raised OverflowError from the database driver.
    elif isinstance(value, int) and value not in SQLITE_INTEGERS:
        return "bad_arguments", f"argument {name!r} is out of the integer range [-2^63, 2^63)"
    elif isinstance(value, float) and not math.isfinite(value):
        return "bad_arguments", f"argument {name!r} must be a finite number, got {value!r}"
    return None


def arguments_problem(tool: ToolSpec, arguments: Any) -> tuple[ToolCallErrorKind, str] | None:
    """Why `arguments` do not fit the tool's schema or the bounds, as (kind, detail)."""
    if not isinstance(arguments, dict):
        return "bad_arguments", f"arguments must be a JSON object, got {_preview(arguments)}"
    props = tool.properties
    unknown = sorted(str(k) for k in set(arguments) - set(props))
    if unknown:
        shown = _clip(", ".join(repr(k) for k in unknown))
        return "bad_arguments", f"unknown argument(s) {shown}; {tool.name} takes {sorted(props)}"
    missing = sorted(set(tool.required) - set(arguments))
    if missing:
        return "bad_arguments", f"missing required argument(s) {missing}"
    for name, value in arguments.items():
        expected = props[name].get("type", "string")
        check = _JSON_TYPE_CHECKS.get(expected)
        if check is not None and not check(value):
            return (
                "bad_arguments",
                f"argument {name!r} must be {expected}, got {type(value).__name__} {_preview(value)}",
            )
        if expected == "integer" and isinstance(value, float):
            value = int(value)  # what the call runs with (normalize_arguments), range-checked
        problem = _scalar_problem(name, value)
        if problem is not None:
            return problem
        allowed = props[name].get("enum")
        if allowed is not None and value not in allowed:
            return (
                "bad_arguments",
                f"argument {name!r} must be one of {allowed}, got {_preview(value)}",
            )
    return None


def validate_arguments(tool: ToolSpec, arguments: Any) -> str | None:
    """Why `arguments` do not fit the tool's schema and bounds, or None when they do."""
    problem = arguments_problem(tool, arguments)
    return None if problem is None else problem[1]


def normalize_arguments(tool: ToolSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    """Schema-valid arguments with integer parameters as ints (`10.0` becomes `10`), so
    every back-end stores and keys a call the same way."""
    props = tool.properties
    return {
        name: int(value)
        if props[name].get("type") == "integer" and isinstance(value, float)
        else value
        for name, value in arguments.items()
    }


def prepare_arguments(tool: ToolSpec, arguments: Any) -> dict[str, Any] | ToolCallError:
    """The arguments a back-end runs (checked and normalized), or why they cannot run."""
    problem = arguments_problem(tool, arguments)
    if problem is not None:
        return ToolCallError(kind=problem[0], detail=problem[1], tool=tool.name)
    return normalize_arguments(tool, arguments)


def parse_call_body(body: str, tools: Sequence[ToolSpec], call_id: str) -> ToolCall | ToolCallError:
    """Parse one block body (or an OpenAI `function` payload serialised the same way)."""
    raw = _clip(body, MAX_CALL_CHARS)
    try:
        payload = load_model_json(body)
    except ModelJsonError as exc:
        return ToolCallError(kind=exc.kind, detail=str(exc), raw=raw)
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        return ToolCallError(
            kind="missing_name",
            detail='a tool call needs {"name": ..., "arguments": {...}}',
            raw=raw,
        )
    return check_call(payload["name"], payload.get("arguments", {}), tools, call_id, raw=raw)


def check_call(
    name: str, arguments: Any, tools: Sequence[ToolSpec], call_id: str, raw: str = ""
) -> ToolCall | ToolCallError:
    """Validate a call's tool name and arguments against the available tools."""
    raw = _clip(raw, MAX_CALL_CHARS)
    tool = next((t for t in tools if t.name == name), None)
    if tool is None:
        known = ", ".join(t.name for t in tools)
        return ToolCallError(
            kind="unknown_tool",
            detail=f"no tool named {_preview(name)}; tools: {known}",
            raw=raw,
            tool=_clip(name),
        )
    if isinstance(arguments, str):
        try:
            arguments = load_model_json(arguments) if arguments.strip() else {}
        except ModelJsonError as exc:
            kind: ToolCallErrorKind = exc.kind
            detail = f"arguments are not JSON: {exc}" if kind == "malformed_json" else str(exc)
            return ToolCallError(kind=kind, detail=detail, raw=raw, tool=name)
    prepared = prepare_arguments(tool, arguments)
    if isinstance(prepared, ToolCallError):
        return prepared.model_copy(update={"raw": raw})
    return ToolCall(id=call_id, name=name, arguments=prepared)


def parse_tool_calls(
    text: str, tools: Sequence[ToolSpec], id_prefix: str = "call"
) -> tuple[str, list[ToolCall], list[ToolCallError]]:
    """Parse every tool-call block in `text`: (prose, valid calls, errors).

    Only the first `MAX_REPLY_CHARS` of `text` and its first `MAX_CALLS_PER_REPLY` blocks
    are parsed; further blocks become one `over_limit` error."""
    prose, bodies = split_tool_calls(text)
    calls: list[ToolCall] = []
    errors: list[ToolCallError] = []
    for i, body in enumerate(bodies[:MAX_CALLS_PER_REPLY]):
        result = parse_call_body(body, tools, f"{id_prefix}_{i}")
        if isinstance(result, ToolCall):
            calls.append(result)
        else:
            errors.append(result)
    extra = len(bodies) - MAX_CALLS_PER_REPLY
    if extra > 0:
        errors.append(
            ToolCallError(
                kind="over_limit",
                detail=f"{extra} tool call(s) past the first {MAX_CALLS_PER_REPLY} were not run",
            )
        )
    return prose, calls, errors
