"""Typed reasoning problems: the question, its checkable answer and where it came from.

A problem is either *procedural* (`generator` is set: a reasoning-gym generator, its
parameters and the index of the item, so the item can be regenerated and its answer
checked by the generator's own exact checker) or *stated* (`generator` is None: the
answer is checked with math-verify). `lineage` says which problem it was evolved from,
by which operator, in which round.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GeneratorRef(_Strict):
    """Enough to regenerate one item of a reasoning-gym generator, bit for bit.

    `params` are the generator's config fields other than `seed` and `size` (some
    generators draw per-dataset choices from `(seed, size)`, so both are kept).
    `distractors` counts the irrelevant sentences prepended by the distractor operator;
    they are rebuilt deterministically from `seed` and `index`.
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int
    size: int = 1
    index: int = 0
    distractors: int = Field(default=0, ge=0)


class Lineage(_Strict):
    """Where a problem came from. Seeds have no parent, operator `seed` and round 0."""

    parent_id: str | None = None
    root_id: str | None = None
    operator: str = "seed"
    round: int = Field(default=0, ge=0)
    note: str = ""

    def rejection_context(self) -> dict[str, str]:
        """The parent and operator, as a rejection of this problem records them."""
        return rejection_context(self.parent_id, self.operator)


def rejection_context(parent_id: str | None, operator: str | None = None) -> dict[str, str]:
    """A rejection's `context` for an evolved problem: its parent and operator, when known."""
    pairs = (("parent_id", parent_id), ("operator", operator))
    return {key: value for key, value in pairs if value is not None}


class Problem(_Strict):
    id: str
    question: str
    answer: str
    source: str
    generator: GeneratorRef | None = None
    lineage: Lineage = Field(default_factory=Lineage)
    meta: dict[str, str] = Field(default_factory=dict)

    @field_validator("id", "question", "answer")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @property
    def procedural(self) -> bool:
        return self.generator is not None

    @property
    def root(self) -> str:
        return self.lineage.root_id or self.id


def child_id(parent_id: str, operator: str, slot: int, round_: int) -> str:
    """A stable id for the `slot`-th child an operator makes from a parent in a round."""
    digest = hashlib.sha256(f"{parent_id}\x1f{operator}\x1f{slot}\x1f{round_}".encode())
    return f"r{round_}-{operator}-{digest.hexdigest()[:10]}"


def derive_seed(seed: int, *parts: object) -> int:
    """A sub-seed that is the same on every run and machine (`hash()` of a str is not)."""
    text = "\x1f".join([str(seed), *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
