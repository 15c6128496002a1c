"""Round kinds' settings by their `kind:` name. The kinds' implementations are registered
by the same names in agentwheel/train/rounds/registry.py, which this module never
imports: a config is read and checked without them.

A new kind is one settings model (a subclass of `RLRound`, agentwheel/settings/rl_round.py,
whose `kind` is its name's literal) with one line in `ROUND_SETTINGS`, and one
implementation registered there.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agentwheel.settings.agentic_round import AgenticRound
from agentwheel.settings.reasoning_round import ReasoningRound
from agentwheel.settings.rl_round import RLRound

ROUND_SETTINGS: dict[str, type[RLRound]] = {"agentic": AgenticRound, "reasoning": ReasoningRound}
"""Each round kind's settings model by its `kind:` name."""


class UnknownRoundKind(ValueError):
    """A config names a round kind that is not registered (or names none)."""


def round_settings(name: str) -> type[RLRound]:
    """The settings model of the kind `name`; an unknown name is an error that lists the
    known ones."""
    if name not in ROUND_SETTINGS:
        raise UnknownRoundKind(
            f"unknown round kind {name!r}; known kinds: {sorted(ROUND_SETTINGS)}"
        )
    return ROUND_SETTINGS[name]


def register_round_settings(name: str, settings: type[RLRound]) -> type[RLRound]:
    """Add a kind's settings model at run time (a plug-in, a test: through
    `register_round_kind`, with its implementation); the name must be new and be the
    model's `kind` default."""
    if name in ROUND_SETTINGS:
        raise ValueError(f"round kind {name!r} is already registered")
    if settings.model_fields["kind"].default != name:
        raise ValueError(f"{settings.__name__}.kind must default to {name!r}")
    ROUND_SETTINGS[name] = settings
    return settings


def unregister_round_settings(name: str) -> None:
    ROUND_SETTINGS.pop(name, None)


def parse_rounds(raw: list[Any]) -> list[Any]:
    """Each round's settings, validated by the model of the kind it names (`kind:`);
    errors are located by the round's index (`rounds.1.steps`)."""
    rounds, errors = [], []
    for index, item in enumerate(raw):
        try:
            rounds.append(_parse_round(item))
        except ValidationError as exc:
            errors += [{**e, "loc": (index, *e["loc"])} for e in exc.errors()]
        except UnknownRoundKind as exc:
            where = (index, "kind")
            errors.append(
                {"type": "value_error", "loc": where, "input": item, "ctx": {"error": exc}}
            )
    if errors:
        raise ValidationError.from_exception_data("rounds", errors)  # type: ignore[arg-type]
    return rounds


def _parse_round(raw: Any) -> Any:
    if isinstance(raw, RLRound) or not isinstance(raw, dict):
        return raw  # settings built in code, or a value pydantic will reject as not a round
    if "kind" not in raw:
        raise UnknownRoundKind(f"a round needs a `kind:` (one of {sorted(ROUND_SETTINGS)})")
    return round_settings(raw["kind"]).model_validate(raw)
