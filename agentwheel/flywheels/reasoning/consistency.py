"""Multi-model consistency: an LLM-made problem has no known answer until solvers agree.

Each of M solver models solves the problem once (greedy, one batched `chat` call per
solver); a solver *agrees* when its final answer, in the required format, is the
teacher's proposed answer by math-verify. The problem is kept when at least m agree.
A solver whose request fails or times out, that runs out of tokens before stating an
answer in the format, or whose answer cannot be compared, does not agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agentwheel.core.messages import Completion, SamplingParams
from agentwheel.core.rejection import Rejection
from agentwheel.flywheels.reasoning.answer_format import extract_answer
from agentwheel.flywheels.reasoning.attempts import policy_request
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.verify import answers_match
from agentwheel.llm.types import ChatModel
from agentwheel.settings.answer_format import AnswerFormat

VoteStatus = Literal["agree", "disagree", "no_answer", "failed", "uncomparable"]


class SolverVote(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    solver: str
    status: VoteStatus
    answer: str | None = None
    error: str | None = None


class ConsistencyResult(BaseModel):
    """The votes on one problem and whether it was kept."""

    model_config = ConfigDict(extra="forbid")

    problem_id: str
    proposed: str
    votes: list[SolverVote]
    agreeing: int
    needed: int
    kept: bool

    def rejection(self, problem: Problem) -> Rejection | None:
        if self.kept:
            return None
        failed = sum(v.status == "failed" for v in self.votes)
        detail = f"{self.agreeing} of {len(self.votes)} solvers agree, {self.needed} needed"
        return Rejection(
            stage="consistency",
            item=problem.id,
            reason="too few solvers agree",
            detail=detail + (f"; {failed} failed or timed out" if failed else ""),
            context=problem.lineage.rejection_context(),
        )


def _vote(
    solver: str, problem: Problem, reply: Completion, fmt: AnswerFormat, timeout_s: int
) -> SolverVote:
    if reply.failed:
        return SolverVote(solver=solver, status="failed", error=reply.error or "request failed")
    extraction = extract_answer(fmt, reply.text)
    if extraction.answer is None:
        status: VoteStatus = "failed" if reply.finish_reason == "length" else "no_answer"
        return SolverVote(
            solver=solver, status=status, error="ran out of tokens" if status == "failed" else None
        )
    match = answers_match(problem.answer, extraction.answer, timeout_s)
    if match.equal:
        return SolverVote(solver=solver, status="agree", answer=extraction.answer)
    if match.status in ("timeout", "error", "unparsable"):
        return SolverVote(
            solver=solver, status="uncomparable", answer=extraction.answer, error=match.status
        )
    return SolverVote(solver=solver, status="disagree", answer=extraction.answer)


def check_consistency(
    problems: Sequence[Problem],
    solvers: Sequence[ChatModel],
    min_agree: int,
    params: SamplingParams | None = None,
    answer_format: AnswerFormat | None = None,
    timeout_s: int = 5,
    batch_size: int = 32,
    on_result: Callable[[ConsistencyResult], None] | None = None,
) -> list[ConsistencyResult]:
    """Vote on every problem's proposed answer with every solver; keep at `min_agree`."""
    if not solvers:
        raise ValueError("the consistency check needs at least one solver model")
    if not 1 <= min_agree <= len(solvers):
        raise ValueError(f"min_agree must be between 1 and {len(solvers)}, got {min_agree}")
    # solvers must state the answer in the format: a stray last number is not a vote
    fmt = (answer_format or AnswerFormat()).model_copy(update={"lenient": False})
    params = params or SamplingParams(max_new_tokens=1024, temperature=0.0)
    results: list[ConsistencyResult] = []
    for start in range(0, len(problems), batch_size):
        chunk = problems[start : start + batch_size]
        requests = [policy_request(p, fmt) for p in chunk]
        votes: list[list[SolverVote]] = [[] for _ in chunk]
        for solver in solvers:
            replies = solver.chat(requests, params)
            for i, (problem, reply) in enumerate(zip(chunk, replies, strict=True)):
                votes[i].append(_vote(solver.name, problem, reply, fmt, timeout_s))
        for problem, problem_votes in zip(chunk, votes, strict=True):
            agreeing = sum(v.status == "agree" for v in problem_votes)
            result = ConsistencyResult(
                problem_id=problem.id,
                proposed=problem.answer,
                votes=problem_votes,
                agreeing=agreeing,
                needed=min_agree,
                kept=agreeing >= min_agree,
            )
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results
