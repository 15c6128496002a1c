"""reasoning-gym generators: regenerate an item, check an answer exactly, raise difficulty.

A procedural problem stores a `GeneratorRef`; `render` regenerates its item, so the
answer never has to be trusted from disk: `exact_check` regenerates and asks the
generator's own checker. Difficulty is raised along *axes* declared per generator
(more steps, larger numbers); the distractor operator (irrelevant sentences with
numbers, as in GSM-NoOp) applies to every problem and leaves the answer unchanged.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agentwheel.flywheels.reasoning.problem import GeneratorRef, Problem, derive_seed

AxisKind = Literal["more_steps", "larger_numbers"]


class GeneratorError(ValueError):
    """A generator name or parameters reasoning-gym rejects."""


@dataclass(frozen=True)
class CountAxis:
    """A count (terms, digits, people) pinned one `step` above the parent's own value.

    The parent's value is read from the item's metadata (`instance_key`) when the
    generator reports it, else from the parent's config (`upper`)."""

    kind: AxisKind
    lower: str
    upper: str
    cap: int
    instance_key: str | None = None
    step: int = 1


@dataclass(frozen=True)
class ScaleAxis:
    """A value range moved past the parent's: [upper + 1, upper * factor]."""

    kind: AxisKind
    lower: str
    upper: str
    cap: int
    factor: int = 10


Axis = CountAxis | ScaleAxis

GENERATOR_AXES: dict[str, tuple[Axis, ...]] = {
    "chain_sum": (
        CountAxis("more_steps", "min_terms", "max_terms", cap=12, instance_key="num_terms"),
        CountAxis("larger_numbers", "min_digits", "max_digits", cap=10, instance_key="num_digits"),
    ),
    "basic_arithmetic": (
        CountAxis("more_steps", "min_terms", "max_terms", cap=8, instance_key="num_terms"),
        CountAxis("larger_numbers", "min_digits", "max_digits", cap=6, instance_key="num_digits"),
    ),
    "products": (
        CountAxis("more_steps", "min_terms", "max_terms", cap=6, instance_key="num_terms"),
        CountAxis("larger_numbers", "min_digits", "max_digits", cap=6, instance_key="num_digits"),
    ),
    "leg_counting": (
        CountAxis("more_steps", "min_animals", "max_animals", cap=20, instance_key="num_animals"),
        ScaleAxis("larger_numbers", "min_instances", "max_instances", cap=200, factor=3),
    ),
    "simple_equations": (
        CountAxis("more_steps", "min_terms", "max_terms", cap=8),
        ScaleAxis("larger_numbers", "min_value", "max_value", cap=100_000),
    ),
    "knights_knaves": (CountAxis("more_steps", "n_people", "n_people", cap=6),),
    "gsm_symbolic": (),
}

_DISTRACTOR_TEMPLATES = (
    "Earlier the same day, {a} people worked through a similar exercise in {b} minutes.",
    "This exercise is number {a} on page {b} of the workbook.",
    "A note in the margin, unrelated to this question, says {a} + {b}.",
    "The classroom next door has {a} chairs and {b} desks.",
    "Last week's version of this exercise used the numbers {a} and {b}.",
)


class Rendered(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    question: str
    answer: str
    entry: dict[str, Any]


def reasoning_gym_version() -> str:
    from importlib.metadata import version

    return version("reasoning-gym")


@functools.lru_cache(maxsize=256)
def _dataset(name: str, params_json: str, seed: int, size: int) -> Any:
    import reasoning_gym

    try:
        return reasoning_gym.create_dataset(name, seed=seed, size=size, **json.loads(params_json))
    except (ValueError, TypeError, AssertionError) as exc:
        raise GeneratorError(f"{name}: {exc}") from exc


def dataset_for(ref: GeneratorRef) -> Any:
    return _dataset(ref.name, json.dumps(ref.params, sort_keys=True), ref.seed, ref.size)


def distractor_sentences(ref: GeneratorRef) -> list[str]:
    """The `ref.distractors` irrelevant sentences, the same for the same ref every time."""
    sentences = []
    for k in range(ref.distractors):
        rng = random.Random(derive_seed(ref.seed, ref.index, "distractor", k))
        template = rng.choice(_DISTRACTOR_TEMPLATES)
        sentences.append(template.format(a=rng.randint(2, 99), b=rng.randint(2, 99)))
    return sentences


def with_distractors(question: str, sentences: list[str]) -> str:
    return " ".join([*sentences, question]) if sentences else question


def render(ref: GeneratorRef) -> Rendered:
    """Regenerate the item a ref points at (question with its distractors, exact answer)."""
    dataset = dataset_for(ref)
    if not 0 <= ref.index < ref.size:
        raise GeneratorError(f"{ref.name}: index {ref.index} outside size {ref.size}")
    try:
        entry = dataset[ref.index]
    except Exception as exc:  # a generator failing on its own parameters is a rejection
        raise GeneratorError(f"{ref.name}: item {ref.index}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(entry.get("answer"), str) or not entry["answer"].strip():
        raise GeneratorError(f"{ref.name}: the generator gives no single answer to check")
    question = with_distractors(entry["question"], distractor_sentences(ref))
    return Rendered(question=question, answer=entry["answer"], entry=entry)


def generator_score(ref: GeneratorRef, answer: str) -> float:
    """The generator's own checker on `answer` (1.0 is an exact match)."""
    rendered = render(ref)
    try:
        return float(dataset_for(ref).score_answer(answer, rendered.entry))
    except Exception:  # a checker crashing on an odd answer scores it as wrong
        return 0.0


def exact_check(problem: Problem) -> str | None:
    """Why a procedural problem's stored question/answer is not the generator's, else None."""
    if problem.generator is None:
        return "not a procedural problem"
    try:
        rendered = render(problem.generator)
    except GeneratorError as exc:
        return str(exc)
    if rendered.question != problem.question:
        return "question differs from the regenerated item"
    if rendered.answer != problem.answer:
        return f"answer {problem.answer!r} differs from the generator's {rendered.answer!r}"
    if generator_score(problem.generator, problem.answer) != 1.0:
        return "the generator's checker does not give the stored answer full marks"
    return None


def axes_for(name: str) -> tuple[Axis, ...]:
    return GENERATOR_AXES.get(name, ())


def _config_value(ref: GeneratorRef, field: str) -> int:
    return int(getattr(dataset_for(ref).config, field))


def raise_axis(ref: GeneratorRef, axis: Axis, seed: int) -> tuple[GeneratorRef, str] | None:
    """A harder ref along `axis` (fresh item, size 1), with a note saying what moved; None
    when the axis is already at its cap."""
    params = dict(ref.params)
    if isinstance(axis, CountAxis):
        entry = render(ref).entry
        current = entry.get(axis.instance_key) if axis.instance_key else None
        value = int(current) if isinstance(current, int) else _config_value(ref, axis.upper)
        if value >= axis.cap:
            return None
        new = min(value + axis.step, axis.cap)
        params[axis.lower] = new
        params[axis.upper] = new
        note = f"{axis.kind}: {axis.upper} {value}→{new}"
    else:
        upper = _config_value(ref, axis.upper)
        if upper >= axis.cap:
            return None
        new_upper = min(upper * axis.factor, axis.cap)
        params[axis.lower] = upper + 1
        params[axis.upper] = new_upper
        note = f"{axis.kind}: {axis.lower}..{axis.upper} → {upper + 1}..{new_upper}"
    # distractors the parent carried stay: difficulty only goes up along a lineage
    child = GeneratorRef(
        name=ref.name, params=params, seed=seed, size=1, index=0, distractors=ref.distractors
    )
    dataset_for(child)  # fail here, not later, if reasoning-gym rejects the parameters
    return child, note
