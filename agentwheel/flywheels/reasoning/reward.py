"""The reward for reasoning RL: verified correctness plus a small format component.

    reward = correct_weight * [final answer verified correct]
           + format_weight  * [final answer stated in the required format]

Correctness uses the same check as the flywheel's pass rates (the generator's exact
checker for procedural problems, math-verify otherwise), so a problem in the learnable
band is one whose reward actually varies. A lenient format still credits a correct
answer given outside the wrapper; the format term is what teaches the wrapper.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from agentwheel.flywheels.reasoning.grading import grade
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.settings.answer_format import AnswerFormat


class RewardBreakdown(BaseModel):
    model_config = ConfigDict(frozen=True)

    total: float
    correctness: float
    format: float
    correct: bool
    followed_format: bool
    extracted: str | None
    checked_by: str


class ReasoningReward:
    """A plain callable: `reward(problem, completion_text) -> float`; `breakdown` gives the parts."""

    def __init__(
        self,
        answer_format: AnswerFormat | None = None,
        correct_weight: float = 1.0,
        format_weight: float = 0.1,
        timeout_s: int = 5,
    ):
        self.answer_format = answer_format or AnswerFormat()
        self.correct_weight = correct_weight
        self.format_weight = format_weight
        self.timeout_s = timeout_s

    def breakdown(self, problem: Problem, completion: str) -> RewardBreakdown:
        verdict = grade(problem, completion, self.answer_format, self.timeout_s)
        correctness = self.correct_weight * float(verdict.correct)
        fmt = self.format_weight * float(verdict.followed_format)
        return RewardBreakdown(
            total=correctness + fmt,
            correctness=correctness,
            format=fmt,
            correct=verdict.correct,
            followed_format=verdict.followed_format,
            extracted=verdict.extracted,
            checked_by=verdict.checked_by,
        )

    def __call__(self, problem: Problem, completion: str) -> float:
        return self.breakdown(problem, completion).total
