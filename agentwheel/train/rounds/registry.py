"""Round kinds by their `kind:` name. A new kind is one module implementing `RoundKind`
(rounds/base.py) and one line in `ROUND_KINDS`."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agentwheel.train.rounds.agentic import AgenticRounds
from agentwheel.train.rounds.base import RLRound, RoundKind
from agentwheel.train.rounds.reasoning import ReasoningRounds

ROUND_KINDS: dict[str, RoundKind[Any, Any]] = {
    kind.name: kind
    for kind in (
        AgenticRounds(),
        ReasoningRounds(),
    )
}


class UnknownRoundKind(ValueError):
    """A config names a round kind that is not registered (or names none)."""


def round_kind(name: str) -> RoundKind[Any, Any]:
    """The kind registered as `name`; an unknown name is an error that lists the known."""
    if name not in ROUND_KINDS:
        raise UnknownRoundKind(f"unknown round kind {name!r}; known kinds: {sorted(ROUND_KINDS)}")
    return ROUND_KINDS[name]


def register_round_kind(kind: RoundKind[Any, Any]) -> RoundKind[Any, Any]:
    """Add a kind at run time (a plug-in, a test); its name must be new."""
    if kind.name in ROUND_KINDS:
        raise ValueError(f"round kind {kind.name!r} is already registered")
    ROUND_KINDS[kind.name] = kind
    return kind


def unregister_round_kind(name: str) -> None:
    ROUND_KINDS.pop(name, None)


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
        raise UnknownRoundKind(f"a round needs a `kind:` (one of {sorted(ROUND_KINDS)})")
    return round_kind(raw["kind"]).settings.model_validate(raw)
