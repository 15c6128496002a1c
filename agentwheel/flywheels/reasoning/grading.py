"""Grade one completion against one problem: extract the final answer, then check it.

Stated problems are checked with math-verify. Procedural problems are checked by the
generator's own exact checker, which knows its task's rules (a fraction in lowest terms,
a knights-and-knaves assignment); when the gold answer is a plain number, math-verify
equality also counts, so `\\boxed{3.0}` for 3 is not lost to a string comparison.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agentwheel.flywheels.reasoning.answer_format import ExtractionMethod, extract_answer
from agentwheel.flywheels.reasoning.generators import GeneratorError, generator_score
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.verify import MatchStatus, answers_match
from agentwheel.settings.answer_format import AnswerFormat

CheckedBy = Literal["generator", "math_verify", "none"]
_PLAIN_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    correct: bool
    extracted: str | None
    followed_format: bool
    extraction: ExtractionMethod
    checked_by: CheckedBy
    status: MatchStatus | Literal["no_answer", "generator"] = "different"


def is_plain_number(answer: str) -> bool:
    return bool(_PLAIN_NUMBER.match(answer.strip().replace(",", "")))


def check_answer(problem: Problem, answer: str, timeout_s: int = 5) -> Verdict:
    """Check an already extracted answer (a solver's or a policy's) against the problem."""
    return _check(problem, answer, True, "format", timeout_s)


def grade(
    problem: Problem, text: str, answer_format: AnswerFormat | None = None, timeout_s: int = 5
) -> Verdict:
    """Extract the final answer from a completion's text and check it."""
    extraction = extract_answer(answer_format or AnswerFormat(), text)
    if extraction.answer is None:
        return Verdict(
            correct=False,
            extracted=None,
            followed_format=False,
            extraction="none",
            checked_by="none",
            status="no_answer",
        )
    return _check(
        problem, extraction.answer, extraction.followed_format, extraction.method, timeout_s
    )


def _check(
    problem: Problem,
    answer: str,
    followed_format: bool,
    extraction: ExtractionMethod,
    timeout_s: int,
) -> Verdict:
    common = {"extracted": answer, "followed_format": followed_format, "extraction": extraction}
    if problem.generator is not None:
        try:
            score = generator_score(problem.generator, answer)
        except GeneratorError:
            score = 0.0
        if score == 1.0:
            return Verdict(correct=True, checked_by="generator", status="generator", **common)
        if not is_plain_number(problem.answer):
            return Verdict(correct=False, checked_by="generator", status="generator", **common)
    match = answers_match(problem.answer, answer, timeout_s)
    return Verdict(correct=match.equal, checked_by="math_verify", status=match.status, **common)
