"""The literal values a workflow writes down, checked against what they stand for.

YAML and hand-typing make values that load without a word and damage the data:
- YAML reads an unquoted `no`/`yes`/`on`/`off` as a boolean and `2025-06-16` as a date;
- a rule's threshold outside its column's values (a typo in a choice, 5000 in a 0–2500
  column, a date written `06/16/2025`) puts impossible values into the world;
- a YAML flow list splits an unquoted sentence at its commas
  (`[My limit was raised to $5,000 last month.]` is two strings).

Each check returns (field path, message) pairs; a message says what was found, what was
expected and how to fix it.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from agentwheel.flywheels.agentic.generator_values import describe_values, produces, value_types
from agentwheel.flywheels.agentic.workflow import ColumnGen, Precondition, Workflow

# The workflow fields whose YAML value is a boolean.
BOOLEAN_KEYS = frozenset({"require_rows", "exist"})
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A sentence opens with a capital letter, a digit, a quote or a placeholder, and closes
# with . ! or ? (a closing quote or bracket may follow).
_SENTENCE_START = re.compile(r"^[\"'“(\[{A-Z0-9]")
_SENTENCE_END = re.compile(r"[.!?][\"'”)\]]*$")
_FRAGMENT_START = re.compile(r"^[a-z0-9]")


def yaml_readings(data: Any, path: str = "") -> tuple[Any, list[tuple[str, str]]]:
    """The data with YAML's dates turned back into ISO strings, and an error for every
    boolean outside `BOOLEAN_KEYS` (YAML's reading of an unquoted yes/no/on/off/true/false
    where a word was meant)."""
    problems: list[tuple[str, str]] = []
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(value, bool) and key in BOOLEAN_KEYS:
                out[key] = value
                continue
            out[key], found = yaml_readings(value, where)
            problems += found
        return out, problems
    if isinstance(data, list):
        items = []
        for i, value in enumerate(data):
            item, found = yaml_readings(value, f"{path}.{i}")
            items.append(item)
            problems += found
        return items, problems
    if isinstance(data, bool):
        word = "yes/on/true" if data else "no/off/false"
        quoted = '"yes"' if data else '"no"'
        return data, [
            (
                path,
                f"YAML reads an unquoted {word} as the boolean {str(data).lower()}, not as a "
                f"word; quote it ({quoted}) if you mean the word",
            )
        ]
    if isinstance(data, datetime):
        return data.isoformat(), problems
    if isinstance(data, date):
        return data.isoformat(), problems
    return data, problems


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_threshold(
    wf: Workflow, field: str, pre: Precondition, where: str
) -> list[tuple[str, str]]:
    """A constant threshold against the values `field`'s generator produces."""
    gen = wf.generator(field)
    if gen is None or pre.value is None or gen.ref is not None:
        return []
    values = pre.value if isinstance(pre.value, list) else [pre.value]
    out: list[tuple[str, str]] = []
    for i, value in enumerate(values):
        at = f"{where}.value.{i}" if isinstance(pre.value, list) else f"{where}.value"
        problem = _threshold_problem(gen, field, pre, value)
        if problem:
            out.append((at, problem))
    return out


def _threshold_problem(gen: ColumnGen, field: str, pre: Precondition, value: Any) -> str:
    ordered = pre.op in ("lt", "le", "gt", "ge")
    # A mapped column takes only its map's values ("e-book", never "ebook").
    listed = gen.choice if gen.choice is not None or gen.map is None else gen.listed_values()
    if gen.date is not None:
        if not isinstance(value, str) or not _ISO_DATE.match(value):
            return (
                f"{value!r} is not an ISO date, and {field} holds {describe_values(gen)}: "
                'write the date as YYYY-MM-DD in quotes, e.g. "2025-06-16"'
            )
        try:
            date.fromisoformat(value)
        except ValueError:
            return f"{value!r} is not a calendar date: write a real date as YYYY-MM-DD"
    elif gen.numeric and not _is_number(value):
        return (
            f"{value!r} is not a number, and {field} holds {describe_values(gen)}: "
            "write the threshold as a number, unquoted"
        )
    elif listed is not None and not ordered and value not in listed:
        close = [c for c in listed if str(c).lower() == str(value).lower()]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (
            f"{value!r} is not a value of {field}, which holds {describe_values(gen)}{hint}: use one "
            f"of them exactly as the {'map' if gen.map is not None else 'choice list'} spells "
            f"it, or add it to the {'map' if gen.map is not None else 'choice list'}"
        )
    if produces(gen, value) is False and (not ordered or listed is None):
        return (
            f"{value!r} is outside what {field}'s generator makes ({describe_values(gen)}): the rule "
            "would put impossible values into the data; pick a threshold inside that range, "
            "or widen the generator"
        )
    return ""


def check_compared_fields(
    wf: Workflow, field: str, source: str, where: str
) -> list[tuple[str, str]]:
    """`field op <value of source>` needs two fields of the same kind of value."""
    left, right = wf.generator(field), wf.generator(source)
    if left is None or right is None:
        return []
    dates = (left.date is not None, right.date is not None)
    if dates[0] != dates[1] or not (value_types(wf, field) & value_types(wf, source)):
        return [
            (
                f"{where}.value_from",
                f"{field} and {source} hold different kinds of values ({describe_values(left)} vs "
                f"{describe_values(right)}): compare it with a field of the same kind",
            )
        ]
    return []


def check_sentences(wf: Workflow) -> list[tuple[str, str]]:
    """False claims and out-of-scope requests are whole sentences a user says."""
    out: list[tuple[str, str]] = []
    for i, step in enumerate(wf.steps):
        for group in ("preconditions", "optional_preconditions"):
            for j, pre in enumerate(getattr(step, group)):
                out += _sentence_list(f"steps.{i}.{group}.{j}.false_claims", pre.false_claims)
    for i, oos in enumerate(wf.out_of_scope):
        out += _sentence_list(f"out_of_scope.{i}.requests", oos.requests)
    return out


def _sentence_list(where: str, texts: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for first, pieces in _rejoined(texts):
        sentence = _joined(pieces)
        if len(pieces) > 1:
            joined = sentence.replace('"', '\\"')
            out.append(
                (
                    f"{where}.{first}",
                    f"entries {first}..{first + len(pieces) - 1} are pieces of one sentence "
                    f"({sentence!r}): a YAML flow list [...] splits an unquoted sentence at "
                    f'each comma; quote it: ["{joined}"], or write one "- " line per sentence',
                )
            )
        elif not (_SENTENCE_START.match(sentence) and _SENTENCE_END.search(sentence)):
            out.append(
                (
                    f"{where}.{first}",
                    f"{sentence!r} is not a sentence: write what the user says as a whole "
                    "sentence, starting with a capital letter and ending with . ! or ?",
                )
            )
    return out


def _joined(pieces: list[str]) -> str:
    """The pieces with their commas back: `$5` + `000` was `$5,000`, other splits had a
    space after the comma."""
    text = pieces[0].strip()
    for piece in pieces[1:]:
        piece = piece.strip()
        text += "," if text[-1:].isdigit() and piece[:1].isdigit() else ", "
        text += piece
    return text


def _rejoined(texts: list[str]) -> list[tuple[int, list[str]]]:
    """(index of the first piece, pieces) per sentence: an entry without a closing . ! or ?
    continues into the next one when that one opens in lower case or with a digit, or the
    entry itself does not open a sentence — the marks a comma split leaves."""
    groups: list[tuple[int, list[str]]] = []
    for k, text in enumerate(texts):
        stripped = text.strip()
        if groups:
            previous = groups[-1][1][-1].strip()
            continues = not _SENTENCE_END.search(previous) and (
                _FRAGMENT_START.match(stripped) or _SENTENCE_END.search(stripped)
            )
            if continues:
                groups[-1][1].append(text)
                continue
        groups.append((k, [text]))
    return groups
