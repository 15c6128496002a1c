"""Offline evolution: harder children of failed problems with no LLM and exact answers.

For a generated problem, a child raises one of the generator's difficulty axes one step
above the parent's own item (more steps: terms, animals, people; larger numbers: digits,
value ranges), and keeps the parent's distractors. Any problem, generated or stated, can
also get one more distractor sentence (irrelevant numbers, answer unchanged).

Which operators come first follows the failure seen in the parent's attempts:
- a wrong answer that copies a number from the question → `distractor` first (the policy
  latches onto surface numbers; more of them is exactly its weakness);
- wrong answers close to the gold number → `larger_numbers` first (slips grow with size);
- anything else (far off, no answer) → `more_steps` first.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentwheel.core.rejection import Rejection
from agentwheel.flywheels.reasoning.attempts import AttemptRecord
from agentwheel.flywheels.reasoning.filters import question_numbers
from agentwheel.flywheels.reasoning.generators import (
    GeneratorError,
    axes_for,
    distractor_sentences,
    raise_axis,
    render,
    with_distractors,
)
from agentwheel.flywheels.reasoning.problem import (
    GeneratorRef,
    Lineage,
    Problem,
    child_id,
    derive_seed,
    rejection_context,
)

PROCEDURAL_OPERATORS = ("more_steps", "larger_numbers", "distractor")


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        return None


def failure_focus(record: AttemptRecord) -> tuple[str, list[str]]:
    """(what the failures look like, operators in the order to try them)."""
    gold = _as_number(record.problem.answer)
    in_question = set(question_numbers(record.problem.question))
    wrong = [w.replace(",", "").strip() for w in record.wrong_answers]
    if any(w in in_question for w in wrong):
        return "copied_number", ["distractor", "more_steps", "larger_numbers"]
    numbers = [x for x in (_as_number(w) for w in wrong) if x is not None]
    if (
        gold is not None
        and numbers
        and any(abs(x - gold) <= max(2.0, 0.25 * abs(gold)) for x in numbers)
    ):
        return "near_miss", ["larger_numbers", "more_steps", "distractor"]
    return "far_off", ["more_steps", "larger_numbers", "distractor"]


class ProceduralEvolver:
    """Up to `children_per_parent` children per failed parent, one operator each."""

    name = "procedural"

    def __init__(self, children_per_parent: int = 2, seed: int = 0):
        self.children_per_parent = children_per_parent
        self.seed = seed

    def evolve(self, record: AttemptRecord, round_: int) -> list[Problem | Rejection]:
        parent = record.problem
        focus, order = failure_focus(record)
        out: list[Problem | Rejection] = []
        for operator in order:
            if len(out) >= self.children_per_parent:
                break
            child = self._child(parent, operator, round_, focus)
            if child is not None:
                out.append(child)
        if not out:
            out.append(
                Rejection(
                    stage="operator",
                    item=parent.id,
                    reason="no procedural operator applies",
                    detail="every difficulty axis is at its cap",
                    context=rejection_context(parent.id),
                )
            )
        return out

    def evolve_all(
        self, records: Sequence[AttemptRecord], round_: int
    ) -> list[Problem | Rejection]:
        return [outcome for r in records for outcome in self.evolve(r, round_)]

    def _lineage(self, parent: Problem, operator: str, round_: int, note: str) -> Lineage:
        return Lineage(
            parent_id=parent.id, root_id=parent.root, operator=operator, round=round_, note=note
        )

    def _child(
        self, parent: Problem, operator: str, round_: int, focus: str
    ) -> Problem | Rejection | None:
        new_id = child_id(parent.id, operator, 0, round_)
        if operator == "distractor":
            return self._distractor_child(parent, new_id, round_, focus)
        if parent.generator is None:
            return None
        axis = next((a for a in axes_for(parent.generator.name) if a.kind == operator), None)
        if axis is None:
            return None
        try:
            raised = raise_axis(parent.generator, axis, derive_seed(self.seed, new_id))
            if raised is None:
                return None
            ref, note = raised
            rendered = render(ref)
        except GeneratorError as exc:
            return Rejection(
                stage="exact_check",
                item=new_id,
                reason="generator failed at the raised difficulty",
                detail=str(exc),
                context=rejection_context(parent.id, operator),
            )
        return Problem(
            id=new_id,
            question=rendered.question,
            answer=rendered.answer,
            source="reasoning_gym",
            generator=ref,
            lineage=self._lineage(parent, operator, round_, f"{note}; focus: {focus}"),
        )

    def _distractor_child(self, parent: Problem, new_id: str, round_: int, focus: str) -> Problem:
        note = f"distractor: +1 irrelevant sentence; focus: {focus}"
        if parent.generator is not None:
            ref = parent.generator.model_copy(
                update={"distractors": parent.generator.distractors + 1}
            )
            rendered = render(ref)
            return Problem(
                id=new_id,
                question=rendered.question,
                answer=rendered.answer,
                source=parent.source,
                generator=ref,
                lineage=self._lineage(parent, "distractor", round_, note),
            )
        # a stated problem has no generator to rebuild from: draw the sentence from the child id
        extra = GeneratorRef(name="distractor", seed=derive_seed(self.seed, new_id), distractors=1)
        return Problem(
            id=new_id,
            question=with_distractors(parent.question, distractor_sentences(extra)),
            answer=parent.answer,
            source=parent.source,
            lineage=self._lineage(parent, "distractor", round_, note),
            meta=dict(parent.meta),
        )
