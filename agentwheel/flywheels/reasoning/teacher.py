"""LLM-backed evolution: a teacher model rewrites failed problems.

Operators (each a prompt file in `prompts/`):
- `harder_rewrite`: harder, aimed at the policy's observed wrong answers;
- `persona_rewrite`: the same mathematical core told from a persona's world (the answer
  must stay the parent's);
- `self_instruct`: a new problem of the same kind, from the parent and pool examples.

Every (parent, operator) pair is one job; all pending jobs go to the teacher in one
batched `chat` call per wave. A reply that does not parse or validate is sent back with
the error appended to the conversation and retried, at most `max_retries` times, then
becomes a `Rejection` with the reason. An accepted child carries the teacher's proposed
answer, which is not trusted until the solver consensus confirms it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from string import Template

from pydantic import BaseModel, ConfigDict

from agentwheel.core.messages import ChatRequest, Completion, Message, SamplingParams
from agentwheel.core.rejection import Rejection
from agentwheel.flywheels.reasoning.answer_format import last_boxed
from agentwheel.flywheels.reasoning.attempts import AttemptRecord
from agentwheel.flywheels.reasoning.filters import normalize_question
from agentwheel.flywheels.reasoning.problem import (
    Lineage,
    Problem,
    child_id,
    derive_seed,
    rejection_context,
)
from agentwheel.flywheels.reasoning.verify import answers_match, is_checkable
from agentwheel.llm.types import ChatModel

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
LLM_OPERATORS = ("harder_rewrite", "persona_rewrite", "self_instruct")
MIN_QUESTION_CHARS = 20
MAX_QUESTION_CHARS = 4000
MAX_ANSWER_CHARS = 80

_PROBLEM_TAG = re.compile(r"<problem>(.*?)</problem>", re.DOTALL | re.IGNORECASE)
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)


@cache
def load_prompt(name: str) -> Template:
    """A prompt template from the package's prompts/ folder (`$name` placeholders)."""
    return Template((PROMPTS_DIR / f"{name}.txt").read_text(encoding="utf-8"))


@cache
def personas() -> tuple[str, ...]:
    text = (PROMPTS_DIR / "personas.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


class TeacherOutputError(BaseModel):
    """Why a teacher reply was not usable; `reason` is the counted category."""

    model_config = ConfigDict(frozen=True)

    reason: str
    detail: str


class ParsedProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    question: str
    answer: str


def _bad(reason: str, detail: str) -> TeacherOutputError:
    return TeacherOutputError(reason=reason, detail=detail)


def parse_teacher_output(
    text: str, operator: str, parent: Problem, timeout_s: int = 5
) -> ParsedProblem | TeacherOutputError:
    """Read one `<problem>` and one `<answer>` block and validate them."""
    problems = _PROBLEM_TAG.findall(text)
    answers = _ANSWER_TAG.findall(text)
    if len(problems) != 1:
        what = "no" if not problems else f"{len(problems)}"
        return _bad("wrong_problem_blocks", f"expected exactly one <problem> block, found {what}")
    if len(answers) != 1:
        what = "no" if not answers else f"{len(answers)}"
        return _bad("wrong_answer_blocks", f"expected exactly one <answer> block, found {what}")
    question = problems[0].strip()
    answer = answers[0].strip()
    answer = (last_boxed(answer) or answer).strip().strip("$").strip()
    if len(question) < MIN_QUESTION_CHARS:
        return _bad("problem_too_short", f"the problem has {len(question)} characters")
    if len(question) > MAX_QUESTION_CHARS:
        return _bad("problem_too_long", f"the problem has {len(question)} characters")
    if not answer:
        return _bad("empty_answer", "the <answer> block is empty")
    if len(answer) > MAX_ANSWER_CHARS:
        return _bad("answer_too_long", "the answer must be only the final value, not a solution")
    if not is_checkable(answer, timeout_s):
        return _bad("answer_not_checkable", f"{answer!r} is not a number or math expression")
    if normalize_question(question) == normalize_question(parent.question):
        return _bad("same_as_parent", "the problem is the original problem unchanged")
    if operator == "persona_rewrite" and not answers_match(parent.answer, answer, timeout_s).equal:
        return _bad(
            "answer_changed",
            f"a persona rewrite keeps the answer {parent.answer!r}, the reply gives {answer!r}",
        )
    return ParsedProblem(question=question, answer=answer)


class _Job:
    def __init__(self, record: AttemptRecord, operator: str, messages: list[Message], note: str):
        self.record = record
        self.operator = operator
        self.messages = messages
        self.note = note
        self.tries = 0
        self.last_error: TeacherOutputError | None = None


class TeacherEvolver:
    """Children from a teacher model, one per (failed parent, operator)."""

    name = "teacher"

    def __init__(
        self,
        teacher: ChatModel,
        operators: Sequence[str] = LLM_OPERATORS,
        params: SamplingParams | None = None,
        max_retries: int = 2,
        seed: int = 0,
        batch_size: int = 32,
        timeout_s: int = 5,
    ):
        unknown = [op for op in operators if op not in LLM_OPERATORS]
        if unknown:
            raise ValueError(f"unknown LLM operators {unknown}; known: {', '.join(LLM_OPERATORS)}")
        self.teacher = teacher
        self.operators = tuple(operators)
        self.params = params or SamplingParams(max_new_tokens=768, temperature=0.8)
        self.max_retries = max_retries
        self.seed = seed
        self.batch_size = batch_size
        self.timeout_s = timeout_s

    def _job(self, record: AttemptRecord, operator: str, pool: Sequence[Problem]) -> _Job:
        parent = record.problem
        rng = random.Random(derive_seed(self.seed, parent.id, operator))
        fields = {"question": parent.question, "answer": parent.answer}
        note = ""
        if operator == "harder_rewrite":
            wrong = record.wrong_answers[:5]
            fields["wrong_answers"] = ", ".join(wrong) if wrong else "(no final answer given)"
        elif operator == "persona_rewrite":
            fields["persona"] = rng.choice(personas())
            note = f"persona: {fields['persona']}"
        else:
            others = [p for p in pool if p.id != parent.id]
            examples = [parent, *rng.sample(others, min(2, len(others)))]
            fields["examples"] = "\n\n".join(
                f"Example {i}:\n{p.question}\nAnswer: {p.answer}" for i, p in enumerate(examples, 1)
            )
        prompt = load_prompt(operator).substitute(fields)
        return _Job(record, operator, [Message(role="user", content=prompt)], note)

    def evolve_all(
        self, records: Sequence[AttemptRecord], round_: int, pool: Sequence[Problem] = ()
    ) -> list[Problem | Rejection]:
        """Children (or rejections) for every record × operator, in that order."""
        pool = list(pool) or [r.problem for r in records]
        jobs = [self._job(r, op, pool) for r in records for op in self.operators]
        results: dict[int, Problem | Rejection] = {}
        pending = list(range(len(jobs)))
        wave = 0
        while pending:
            replies: list[Completion] = []
            for start in range(0, len(pending), self.batch_size):
                batch = pending[start : start + self.batch_size]
                requests = [ChatRequest(messages=list(jobs[i].messages)) for i in batch]
                params = self.params.model_copy(
                    update={"seed": derive_seed(self.seed, jobs[batch[0]].record.problem.id, wave)}
                )
                replies.extend(self.teacher.chat(requests, params))
            still: list[int] = []
            for i, reply in zip(pending, replies, strict=True):
                outcome = self._take(jobs[i], reply, round_)
                if outcome is None:
                    still.append(i)
                else:
                    results[i] = outcome
            pending = still
            wave += 1
        return [results[i] for i in range(len(jobs))]

    def _take(self, job: _Job, reply: Completion, round_: int) -> Problem | Rejection | None:
        """The job's outcome, or None when it goes back to the teacher for another try."""
        job.tries += 1
        parent = job.record.problem
        if reply.failed:
            job.last_error = _bad("teacher_call_failed", reply.error or "request failed")
        else:
            parsed = parse_teacher_output(reply.text, job.operator, parent, self.timeout_s)
            if isinstance(parsed, ParsedProblem):
                return Problem(
                    id=child_id(parent.id, job.operator, 0, round_),
                    question=parsed.question,
                    answer=parsed.answer,
                    source=f"teacher:{self.teacher.name}",
                    lineage=Lineage(
                        parent_id=parent.id,
                        root_id=parent.root,
                        operator=job.operator,
                        round=round_,
                        note=job.note,
                    ),
                    meta={"answer_status": "proposed", "teacher_tries": str(job.tries)},
                )
            job.last_error = parsed
            # the bad reply and the error go back into the conversation for the next try
            feedback = load_prompt("retry_feedback").substitute(error=parsed.detail)
            job.messages = [
                *job.messages,
                Message(role="assistant", content=reply.text),
                Message(role="user", content=feedback),
            ]
        if job.tries <= self.max_retries:
            return None
        error = job.last_error
        return Rejection(
            stage="teacher_output",
            item=child_id(parent.id, job.operator, 0, round_),
            reason=error.reason,
            detail=f"after {job.tries} tries: {error.detail}",
            context=rejection_context(parent.id, job.operator),
        )
