"""The answer format a reasoning policy is asked for (a reasoning round's `answer_format:`).
Reading the final answer back out of a completion is the flywheel's
(agentwheel/flywheels/reasoning/answer_format.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

FormatName = Literal["boxed", "hash", "answer_tag"]

DEFAULT_INSTRUCTIONS: dict[FormatName, str] = {
    "boxed": "Solve the problem step by step. Put your final answer in \\boxed{}.",
    "hash": "Solve the problem step by step. End with a line '#### <final answer>'.",
    "answer_tag": (
        "Solve the problem step by step. Put your final answer in <answer></answer> tags."
    ),
}


class AnswerFormat(BaseModel):
    """How the policy is asked to state its final answer, and how strictly it is read back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: FormatName = "boxed"
    instruction: str | None = None
    """Replaces the format's default instruction (it must still ask for the same wrapper)."""
    lenient: bool = True
    """Without the wrapper, fall back to an "answer is X" phrase, then to the last number."""

    def prompt(self, question: str) -> str:
        """The user message the policy sees for a question."""
        return f"{question.strip()}\n\n{self.instruction or DEFAULT_INSTRUCTIONS[self.name]}"
