"""Error collection: the policy attempts every problem n times; pass rates and the wrong
answers are kept with the problem.

Requests are batched through `ChatModel.chat` (n copies of a problem's prompt sit in the
same batch, so a sampling back-end draws n independent samples). A request that fails
at the transport level counts as a wrong sample and is flagged, so that an outage shows
up in the counts instead of as a hard problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from agentwheel.core.messages import ChatRequest, Completion, Message, SamplingParams
from agentwheel.flywheels.reasoning.grading import grade
from agentwheel.flywheels.reasoning.problem import Problem, derive_seed
from agentwheel.llm.types import ChatModel
from agentwheel.settings.answer_format import AnswerFormat


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    extracted: str | None
    correct: bool
    followed_format: bool
    checked_by: str
    finish_reason: str
    error: str | None = None


class AttemptRecord(BaseModel):
    """One problem's n attempts by one policy."""

    model_config = ConfigDict(extra="forbid")

    problem: Problem
    policy: str
    samples: list[Sample]
    passes: int = Field(ge=0)
    pass_rate: float = Field(ge=0.0, le=1.0)
    wrong_answers: list[str] = Field(default_factory=list)
    """Distinct wrong final answers, most frequent first (empty answers left out)."""
    failed_requests: int = 0

    @classmethod
    def from_samples(cls, problem: Problem, policy: str, samples: list[Sample]) -> AttemptRecord:
        passes = sum(s.correct for s in samples)
        counts: dict[str, int] = {}
        for s in samples:
            if not s.correct and s.extracted:
                counts[s.extracted] = counts.get(s.extracted, 0) + 1
        wrong = sorted(counts, key=lambda a: -counts[a])
        return cls(
            problem=problem,
            policy=policy,
            samples=samples,
            passes=passes,
            pass_rate=passes / len(samples) if samples else 0.0,
            wrong_answers=wrong,
            failed_requests=sum(s.error is not None for s in samples),
        )


def policy_request(problem: Problem, answer_format: AnswerFormat) -> ChatRequest:
    return ChatRequest(
        messages=[Message(role="user", content=answer_format.prompt(problem.question))]
    )


def _sample(problem: Problem, completion: Completion, fmt: AnswerFormat, timeout_s: int) -> Sample:
    if completion.failed:
        return Sample(
            text=completion.text,
            extracted=None,
            correct=False,
            followed_format=False,
            checked_by="none",
            finish_reason=completion.finish_reason,
            error=completion.error or "request failed",
        )
    verdict = grade(problem, completion.text, fmt, timeout_s)
    return Sample(
        text=completion.text,
        extracted=verdict.extracted,
        correct=verdict.correct,
        followed_format=verdict.followed_format,
        checked_by=verdict.checked_by,
        finish_reason=completion.finish_reason,
    )


def collect_attempts(
    problems: Sequence[Problem],
    policy: ChatModel,
    n: int,
    params: SamplingParams,
    answer_format: AnswerFormat | None = None,
    batch_size: int = 32,
    timeout_s: int = 5,
    on_record: Callable[[AttemptRecord], None] | None = None,
) -> list[AttemptRecord]:
    """Attempt each problem n times; `on_record` sees each problem's record as it finishes.

    Each chat call carries whole problems (n requests each, at least one problem per call),
    and its sampling seed is derived from the call's first problem id, so reruns and
    resumed runs draw the same samples for the same batch.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    fmt = answer_format or AnswerFormat()
    per_call = max(1, batch_size // n)
    records: list[AttemptRecord] = []
    for start in range(0, len(problems), per_call):
        chunk = problems[start : start + per_call]
        requests = [policy_request(p, fmt) for p in chunk for _ in range(n)]
        seed = derive_seed(params.seed or 0, chunk[0].id)
        completions = policy.chat(requests, params.model_copy(update={"seed": seed}))
        for i, problem in enumerate(chunk):
            samples = [
                _sample(problem, c, fmt, timeout_s) for c in completions[i * n : (i + 1) * n]
            ]
            record = AttemptRecord.from_samples(problem, policy.name, samples)
            records.append(record)
            if on_record is not None:
                on_record(record)
    return records
