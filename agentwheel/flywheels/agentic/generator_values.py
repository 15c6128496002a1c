"""The values a column generator can make: what a rule's threshold, and the values next
to it that the world builder tries, must stay within."""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Any

from agentwheel.flywheels.agentic.workflow import ColumnGen


@lru_cache(maxsize=256)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = ["[0-9]" if c == "#" else "[A-HJ-NP-Z]" if c == "?" else re.escape(c) for c in pattern]
    return re.compile("^" + "".join(parts) + "$")


def produces(gen: ColumnGen, value: Any) -> bool | None:
    """Whether the generator can make `value` (None: cannot tell, e.g. Faker text)."""
    if isinstance(value, bool):
        return False
    number = isinstance(value, int | float)
    if gen.choice is not None:
        return any(c == value and isinstance(c, str) != number for c in gen.choice)
    if gen.int_range is not None:
        lo, hi = gen.int_range
        return number and float(value).is_integer() and lo <= value <= hi
    if gen.money is not None:
        return number and gen.money[0] <= value <= gen.money[1]
    if gen.date is not None:
        if not isinstance(value, str):
            return False
        try:
            day = date.fromisoformat(value)
            return date.fromisoformat(gen.date[0]) <= day <= date.fromisoformat(gen.date[1])
        except ValueError:
            return False
    if gen.pattern is not None:
        return isinstance(value, str) and bool(_pattern_regex(gen.pattern).match(value))
    if gen.value is not None:
        return bool(value == gen.value)
    return None


def describe_values(gen: ColumnGen) -> str:
    """What a generator makes, in words (for messages)."""
    if gen.choice is not None:
        return f"one of {_shown(list(gen.choice))}"
    if gen.int_range is not None:
        return f"whole numbers from {gen.int_range[0]} to {gen.int_range[1]}"
    if gen.money is not None:
        return f"amounts from {gen.money[0]:g} to {gen.money[1]:g}"
    if gen.date is not None:
        return f"ISO dates from {gen.date[0]} to {gen.date[1]}"
    if gen.pattern is not None:
        return f"strings like {gen.pattern!r} (# = digit, ? = capital letter)"
    return "its generator's values"


def _shown(values: list[Any]) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"
