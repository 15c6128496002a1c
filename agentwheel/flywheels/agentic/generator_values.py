"""The values a column generator can make: drawing one (`generate_value`), what a rule's
threshold and the values next to it that the world builder tries must stay within, and
their JSON types."""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, cast

from faker import Faker

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
    if gen.follows is not None:
        via, _, source = gen.follows.partition(".")
        via_gen = wf.tables[field.partition(".")[0]].columns.get(via)
        if via_gen is None or via_gen.ref is None:
            return set()
        return value_types(wf, f"{via_gen.ref.partition('.')[0]}.{source}", _hops + 1)
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


_TITLES = {
    "mr",
    "mrs",
    "ms",
    "miss",
    "dr",
    "md",
    "dds",
    "phd",
    "dvm",
    "jr",
    "sr",
    "ii",
    "iii",
    "iv",
    "v",
}


class GenerationError(Exception):
    """The generators cannot produce a world this branch demands (a counted rejection)."""


def _pattern(pattern: str, rng: random.Random) -> str:
    out = []
    for ch in pattern:
        if ch == "#":
            out.append(rng.choice("0123456789"))
        elif ch == "?":
            out.append(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ"))
        else:
            out.append(ch)
    return "".join(out)


def _name_words(name: Any) -> list[str]:
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", str(name))]
    return [w for w in words if w not in _TITLES] or ["user"]


def _email_from(name: Any, rng: random.Random, fake: Faker) -> str:
    words = _name_words(name)
    first, last = words[0], words[-1]
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first}{last}",
            f"{first[0]}{last}",
            f"{first}_{last}",
            f"{last}.{first}",
        ]
    )
    if rng.random() < 0.35:
        local += str(rng.randint(1, 99))
    return f"{local}@{fake.free_email_domain()}"


def _username_from(name: Any, rng: random.Random) -> str:
    words = _name_words(name)
    first, last = words[0], words[-1]
    base = rng.choice([f"{first[0]}{last}", f"{first}.{last}", f"{last}{first[0]}"])
    return base + (str(rng.randint(1, 9)) if rng.random() < 0.3 else "")


def generate_value(
    gen: ColumnGen,
    rng: random.Random,
    fake: Faker,
    row: dict[str, Any] | None = None,
    tables: dict[str, list[dict[str, Any]]] | None = None,
) -> Any:
    if gen.faker is not None:
        return str(getattr(fake, gen.faker)())
    if gen.pattern is not None:
        return _pattern(gen.pattern, rng)
    if gen.choice is not None:
        return sample_choice(gen, rng)
    if gen.int_range is not None:
        return rng.randint(*gen.int_range)
    if gen.money is not None:
        return round(rng.uniform(*gen.money), 2)
    if gen.date is not None:
        lo, hi = (date.fromisoformat(d) for d in gen.date)
        return (lo + timedelta(days=rng.randint(0, (hi - lo).days))).isoformat()
    if gen.ref is not None:
        parent, _, column = gen.ref.partition(".")
        parents = (tables or {}).get(parent, [])
        if not parents:
            raise GenerationError(f"{gen.ref} has no rows to reference")
        # The same draw as choosing from the list of keys, without building it per row.
        return cast(Scalar, rng.choice(parents)[column])
    if gen.map is not None:
        return gen.map.values[str((row or {}).get(gen.map.column))]
    if gen.follows is not None:
        return None  # set from the referenced row by `fill_follows`
    if gen.email_of is not None:
        return _email_from((row or {}).get(gen.email_of, ""), rng, fake)
    if gen.username_of is not None:
        return _username_from((row or {}).get(gen.username_of, ""), rng)
    assert gen.value is not None
    return gen.value
