"""Round kinds' implementations by their `kind:` name, looked up when a round runs. Their
settings models are registered by the same names in agentwheel/settings/rounds.py (read
and checked without this module). A new kind is one module implementing `RoundKind`
(rounds/base.py), one line in `ROUND_KINDS`, and its settings model there."""

from __future__ import annotations

from typing import Any

from agentwheel.settings.rounds import (
    ROUND_SETTINGS,
    UnknownRoundKind,
    register_round_settings,
    unregister_round_settings,
)
from agentwheel.train.rounds.agentic import AgenticRounds
from agentwheel.train.rounds.base import RoundKind
from agentwheel.train.rounds.reasoning import ReasoningRounds

ROUND_KINDS: dict[str, RoundKind[Any, Any]] = {
    kind.name: kind
    for kind in (
        AgenticRounds(),
        ReasoningRounds(),
    )
}
assert all(ROUND_SETTINGS[name] is kind.settings for name, kind in ROUND_KINDS.items())


def round_kind(name: str) -> RoundKind[Any, Any]:
    """The kind registered as `name`; an unknown name is an error that lists the known."""
    if name not in ROUND_KINDS:
        raise UnknownRoundKind(f"unknown round kind {name!r}; known kinds: {sorted(ROUND_KINDS)}")
    return ROUND_KINDS[name]


def register_round_kind(kind: RoundKind[Any, Any]) -> RoundKind[Any, Any]:
    """Add a kind at run time (a plug-in, a test), with its settings model; its name must
    be new."""
    if kind.name in ROUND_KINDS:
        raise ValueError(f"round kind {kind.name!r} is already registered")
    register_round_settings(kind.name, kind.settings)
    ROUND_KINDS[kind.name] = kind
    return kind


def unregister_round_kind(name: str) -> None:
    ROUND_KINDS.pop(name, None)
    unregister_round_settings(name)
