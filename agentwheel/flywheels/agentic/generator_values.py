"""The values a column generator can make: what a rule's threshold, and the values next
to it that the world builder tries, must stay within; their JSON types; drawing a choice."""

from __future__ import annotations

import random
import re
from datetime import date
from functools import lru_cache
from typing import Any

from agentwheel.flywheels.agentic.workflow import ColumnGen, Scalar, Workflow


@lru_cache(maxsize=256)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = ["[0-9]" if c == "#" else "[A-HJ-NP-Z]" if c == "?" else re.escape(c) for c in pattern]
    return re.compile("^" + "".join(parts) + "$")


def produces(gen: ColumnGen, value: Any) -> bool | None:
    """Whether the generator can make `value` (None: cannot tell, e.g. Faker text)."""
    if isinstance(value, bool):
        return False
    number = isinstance(value, int | float)
    if gen.choice is not None or gen.map is not None:
        listed = gen.listed_values() or []
        return any(c == value and isinstance(c, str) != number for c in listed)
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
    """What a generator makes, in words (for messages and the expander's prompts)."""
    if gen.choice is not None:
        return f"one of {_shown(list(gen.choice))}"
    if gen.map is not None:
        return f"one of {_shown(gen.listed_values() or [])} (following {gen.map.column})"
    if gen.int_range is not None:
        return f"whole numbers from {gen.int_range[0]} to {gen.int_range[1]}"
    if gen.money is not None:
        return f"amounts from {gen.money[0]:g} to {gen.money[1]:g}"
    if gen.date is not None:
        return f"ISO dates from {gen.date[0]} to {gen.date[1]}"
    if gen.pattern is not None:
        return f"strings like {gen.pattern!r} (# = digit, ? = capital letter)"
    if gen.ref is not None:
        return f"values of {gen.ref}"
    if gen.email_of is not None or gen.username_of is not None:
        return "values derived from the person's name"
    if gen.faker is not None:
        return f"realistic {gen.faker.replace('_', ' ')} values"
    return f"always {gen.value!r}"


def _shown(values: list[Any]) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


def value_types(wf: Workflow, field: str, _hops: int = 0) -> set[str]:
    """The JSON types a field's values have (what a tool parameter bound to it must accept)."""
    gen = wf.generator(field)
    if gen is None or _hops > len(wf.tables):
        return set()
    if gen.ref is not None:
        return value_types(wf, gen.ref, _hops + 1)
    if gen.int_range is not None:
        return {"integer", "number"}
    if gen.money is not None:
        return {"number"}
    values = gen.listed_values()
    if values is None:
        return {"string"}
    types = {
        "string" if isinstance(v, str) else "number" if isinstance(v, float) else "integer"
        for v in values
    }
    if types == {"integer"}:
        types.add("number")
    return types if len(types) == 1 or types == {"integer", "number"} else set()


def sample_choice(gen: ColumnGen, rng: random.Random) -> Scalar:
    assert gen.choice is not None
    return (
        rng.choices(gen.choice, weights=gen.weights)[0] if gen.weights else rng.choice(gen.choice)
    )
