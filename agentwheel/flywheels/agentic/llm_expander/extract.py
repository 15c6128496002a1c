"""The JSON object in a teacher's reply, validated against an answer model.

Code fences and prose around the JSON are tolerated. Whatever makes a reply unusable
becomes an `AnswerError` whose message is written for the teacher to read and fix.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentwheel.core.messages import Completion

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
AnswerT = TypeVar("AnswerT", bound=BaseModel)


class AnswerError(ValueError):
    """A teacher answer that cannot be used; the message is what the teacher is told."""


def answer_text(completion: Completion) -> str:
    """The text of an answer that was not cut off at the length limit."""
    if completion.finish_reason == "length":
        raise AnswerError(
            "the answer was cut off at the length limit; answer more briefly, "
            "with the JSON object complete"
        )
    return completion.text


def extract_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a teacher's answer: from a fenced block if there is one, else the
    largest object anywhere in the text. Raises AnswerError saying what is wrong."""
    fenced = [m.group(1) for m in _FENCE.finditer(text)]
    error: json.JSONDecodeError | None = None
    error_reach = -1
    for chunk in [*fenced, text]:
        best, size, chunk_error, reach = _largest_object(chunk)
        # A broken parse that ran further than the best object was the intended answer,
        # and the object found is only a piece of it: report the syntax error instead.
        if best is not None and size >= reach:
            return best
        if chunk_error is not None and reach > error_reach:
            error, error_reach = chunk_error, reach
    if error is not None:
        where = "the ```json block" if fenced else "the JSON object"
        raise AnswerError(
            f"{where} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        )
    raise AnswerError("no JSON object found in the answer")


def _largest_object(
    chunk: str,
) -> tuple[dict[str, Any] | None, int, json.JSONDecodeError | None, int]:
    """(largest decodable object, its length, the failed parse that got furthest, how far)."""
    decoder = json.JSONDecoder()
    best: dict[str, Any] | None = None
    size = error_reach = -1
    error: json.JSONDecodeError | None = None
    position = chunk.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(chunk, position)
        except json.JSONDecodeError as exc:
            if exc.pos - position > error_reach:
                error, error_reach = exc, exc.pos - position
            position = chunk.find("{", position + 1)
            continue
        if isinstance(value, dict) and end - position > size:
            best, size = value, end - position
        # Objects nested inside a decoded one are parts of it, not candidates.
        position = chunk.find("{", end)
    return best, size, error, error_reach


def describe_validation_error(exc: ValidationError, limit: int = 8) -> str:
    """`field.path: message` lines, as the teacher should read them."""
    lines = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        lines.append(f"- {where}: {error['msg'].removeprefix('Value error, ')}")
    if exc.error_count() > limit:
        lines.append(f"- ... and {exc.error_count() - limit} more")
    return "\n".join(lines)


def parse_answer(model: type[AnswerT], text: str, context: dict[str, Any] | None = None) -> AnswerT:
    """Extract and validate one answer; AnswerError carries the problems."""
    data = extract_json_object(text)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise AnswerError(describe_validation_error(exc)) from None
