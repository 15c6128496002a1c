"""Filters that decide which problems a round keeps: duplicates and the learnable band.

Near-duplicates: two problems with the same numbers, the same answer and almost the same
words (word 3-gram Jaccard at or above a threshold) are one problem said twice, e.g. a
rewrite that changed a name. Problems whose numbers or answers differ are different
problems however alike the wording ("2 horses" and "2 snakes" from one template), so the
comparison only runs inside a bucket of equal (numbers, answer); that also keeps it far
from quadratic on large pools.

Learnable band: the current policy solves the problem sometimes, not never and not
always (pass rate over n samples strictly between `low` and `high`).
"""

from __future__ import annotations

import re
import string
from collections import defaultdict

from pydantic import BaseModel, ConfigDict

from agentwheel.core.rejection import Rejection
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.verify import normalize_answer

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize_question(question: str) -> str:
    return " ".join(question.lower().translate(_PUNCT).split())


def question_numbers(question: str) -> tuple[str, ...]:
    return tuple(sorted(n.replace(",", "") for n in _NUMBER.findall(question)))


def shingles(question: str, k: int = 3) -> frozenset[str]:
    words = normalize_question(question).split()
    if len(words) < k:
        return frozenset([" ".join(words)])
    return frozenset(" ".join(words[i : i + k]) for i in range(len(words) - k + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _bucket(problem: Problem) -> tuple[tuple[str, ...], str]:
    return question_numbers(problem.question), normalize_answer(problem.answer)


class Deduper:
    """Keeps the first of each set of duplicates it is shown, in order."""

    def __init__(self, near_threshold: float = 0.85):
        self.near_threshold = near_threshold
        self._exact: dict[str, str] = {}
        self._buckets: dict[tuple[tuple[str, ...], str], list[tuple[str, frozenset[str]]]] = (
            defaultdict(list)
        )

    def add(self, problem: Problem) -> None:
        """Remember a problem without checking it (the pool new ones must differ from)."""
        self._exact.setdefault(normalize_question(problem.question), problem.id)
        self._buckets[_bucket(problem)].append((problem.id, shingles(problem.question)))

    def check(self, problem: Problem) -> Rejection | None:
        """A rejection when `problem` repeats one already seen; else remember it, None."""
        context = problem.lineage.rejection_context()
        same = self._exact.get(normalize_question(problem.question))
        if same is not None:
            return Rejection(
                stage="duplicate",
                item=problem.id,
                reason="same question",
                detail=f"as {same}",
                context=context,
            )
        grams = shingles(problem.question)
        for other_id, other in self._buckets.get(_bucket(problem), []):
            similarity = jaccard(grams, other)
            if similarity >= self.near_threshold:
                return Rejection(
                    stage="near_duplicate",
                    item=problem.id,
                    reason="same numbers and answer, nearly the same words",
                    detail=f"as {other_id} (similarity {similarity:.2f})",
                    context=context,
                )
        self.add(problem)
        return None


class Band(BaseModel):
    """The learnable band: pass rates strictly between `low` and `high`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float = 0.0
    high: float = 1.0

    def contains(self, pass_rate: float) -> bool:
        return self.low < pass_rate < self.high

    def rejection(self, problem: Problem, pass_rate: float) -> Rejection | None:
        if self.contains(pass_rate):
            return None
        reason = "too hard (never solved)" if pass_rate <= self.low else "too easy (always solved)"
        return Rejection(
            stage="band",
            item=problem.id,
            reason=reason,
            detail=f"pass rate {pass_rate:.2f}",
            context=problem.lineage.rejection_context(),
        )
