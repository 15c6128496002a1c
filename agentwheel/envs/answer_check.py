"""Does a submitted answer match the gold one? Normalized text, numbers within a
tolerance, sets and ordered lists of items, and "not in the data".

Also: does a tool output hold the gold value (the evidence that the query producing the
answer ran)."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable
from typing import Any

from agentwheel.core.industrial import NOT_IN_DATA, AnswerSpec

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ITEM_SEPARATORS = re.compile(r"\s*(?:[,;\n]|\band\b)\s*")
_ABSENT_PHRASES = (
    NOT_IN_DATA,
    "not in data",
    "not available in the data",
    "no data",
    "not found",
    "unknown",
    "cannot be determined",
    "not recorded",
    "no answer",
)


def normalize_text(text: str) -> str:
    """Lowercase, no punctuation, no articles, single spaces."""
    lowered = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(_ARTICLES.sub(" ", lowered).split())


def numbers_in(text: str) -> list[float]:
    found = []
    for match in _NUMBER.findall(text):
        try:
            found.append(float(match.replace(",", "")))
        except ValueError:
            continue
    return found


def _number_close(given: float, gold: float, tolerance: float) -> bool:
    return abs(given - gold) <= tolerance + 1e-9 * max(1.0, abs(gold))


def _item_matches(given: str, gold: float | str, tolerance: float) -> bool:
    if isinstance(gold, int | float):
        numbers = numbers_in(given)
        return len(numbers) == 1 and _number_close(numbers[0], float(gold), tolerance)
    return normalize_text(given) == normalize_text(gold)


def split_items(answer: str) -> list[str]:
    stripped = answer.strip().strip("[]")
    return [item.strip(" '\"") for item in _ITEM_SEPARATORS.split(stripped) if item.strip(" '\"")]


def answer_matches(spec: AnswerSpec, given: str) -> bool:
    """Whether `given` (what the agent submitted) is the gold answer under `spec`'s rule."""
    if spec.kind == "absent":
        said = normalize_text(given)
        return any(normalize_text(p) == said for p in _ABSENT_PHRASES)
    if spec.kind == "number":
        numbers = numbers_in(given)
        return bool(numbers) and _number_close(numbers[0], float(spec.value), spec.tolerance)  # type: ignore[arg-type]
    if spec.kind == "text":
        return normalize_text(given) == normalize_text(str(spec.value))
    gold = spec.value if isinstance(spec.value, list) else [spec.value]
    items = split_items(given)
    if len(items) != len(gold):
        return False
    if spec.kind == "list":
        return all(_item_matches(g, v, spec.tolerance) for g, v in zip(items, gold, strict=True))
    unmatched = list(gold)
    for item in items:
        hit = next((v for v in unmatched if _item_matches(item, v, spec.tolerance)), None)
        if hit is None:
            return False
        unmatched.remove(hit)
    return True


def leaf_values(value: Any) -> Iterable[Any]:
    """Every scalar inside nested dicts and lists (None left out)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from leaf_values(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaf_values(v)
    elif value is not None:
        yield value


def _holds(values: list[Any], text: str, gold: float | str, tolerance: float) -> bool:
    if isinstance(gold, int | float):
        numbers = [float(v) for v in values if isinstance(v, int | float)] + numbers_in(text)
        return any(_number_close(n, float(gold), tolerance) for n in numbers)
    wanted = normalize_text(gold)
    return any(normalize_text(str(v)) == wanted for v in values) or wanted in normalize_text(text)


def output_holds_answer(spec: AnswerSpec, output_json: str) -> bool:
    """Whether a tool's output (its JSON as the agent saw it) holds every gold value: the
    evidence that the query producing the answer ran. An `absent` answer has no value to
    hold; any successful query counts."""
    try:
        output = json.loads(output_json)
    except ValueError:
        output = output_json
    values = list(leaf_values(output))
    text = " ".join(str(v) for v in values)
    if spec.kind == "absent":
        return True
    gold = spec.value if isinstance(spec.value, list) else [spec.value]
    return all(_holds(values, text, g, spec.tolerance) for g in gold)
