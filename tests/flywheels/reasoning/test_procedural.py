import pytest

from agentwheel.core.rejection import Rejection
from agentwheel.flywheels.reasoning.attempts import AttemptRecord, Sample
from agentwheel.flywheels.reasoning.generators import (
    dataset_for,
    exact_check,
    generator_score,
    render,
)
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.procedural import ProceduralEvolver, failure_focus
from agentwheel.flywheels.reasoning.seeds import generate_seeds, load_seeds


def record(problem: Problem, wrong: list[str]) -> AttemptRecord:
    samples = [
        Sample(
            text=w,
            extracted=w,
            correct=False,
            followed_format=True,
            checked_by="t",
            finish_reason="stop",
        )
        for w in wrong
    ]
    samples.append(
        Sample(
            text="",
            extracted=problem.answer,
            correct=True,
            followed_format=True,
            checked_by="t",
            finish_reason="stop",
        )
    )
    return AttemptRecord.from_samples(problem, "test", samples)


def instance_value(problem: Problem, key: str) -> int:
    return render(problem.generator).entry["metadata"][key]


@pytest.mark.parametrize("name", ["chain_sum", "basic_arithmetic", "products"])
def test_children_are_harder_along_each_axis_and_exact(name):
    parents = generate_seeds(
        name, 6, {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}, seed=3
    )
    evolver = ProceduralEvolver(children_per_parent=3, seed=0)
    for parent in parents:
        children = evolver.evolve(record(parent, ["999999"]), round_=1)
        by_op = {c.lineage.operator: c for c in children if isinstance(c, Problem)}
        assert set(by_op) == {"more_steps", "larger_numbers", "distractor"}
        assert instance_value(by_op["more_steps"], "num_terms") == 3
        assert instance_value(by_op["larger_numbers"], "num_digits") == 2
        assert by_op["distractor"].answer == parent.answer
        assert by_op["distractor"].question.endswith(parent.question)
        for child in by_op.values():
            assert exact_check(child) is None
            assert generator_score(child.generator, child.answer) == 1.0
            assert child.lineage.parent_id == parent.id and child.lineage.round == 1
            assert child.lineage.root_id == parent.id


def test_every_bundled_procedural_seed_and_child_is_exact():
    seeds = [p for p in load_seeds("bundled").problems if p.procedural]
    evolver = ProceduralEvolver(children_per_parent=3)
    children = [
        c for p in seeds for c in evolver.evolve(record(p, []), 1) if isinstance(c, Problem)
    ]
    assert len(children) > len(seeds)
    for problem in [*seeds, *children]:
        assert exact_check(problem) is None, problem.id
    # a generator with no difficulty knobs (gsm_symbolic) still gets a distractor child
    assert any(
        c.generator.name == "gsm_symbolic" and c.lineage.operator == "distractor" for c in children
    )


def test_exact_check_catches_a_tampered_answer():
    problem = generate_seeds("chain_sum", 1, seed=5)[0]
    wrong = str(int(problem.answer) + 1)
    assert "differs" in exact_check(problem.model_copy(update={"answer": wrong}))
    assert generator_score(problem.generator, wrong) < 1.0


def test_distractors_accumulate_and_difficulty_never_goes_down():
    parent = generate_seeds("chain_sum", 1, {"min_terms": 2, "max_terms": 2}, seed=1)[0]
    evolver = ProceduralEvolver(children_per_parent=1)
    copied = next(n for n in parent.question.split() if n.isdigit())
    first = evolver.evolve(record(parent, [copied]), 1)[0]  # a copied operand → distractor first
    assert first.lineage.operator == "distractor" and first.generator.distractors == 1
    second = evolver.evolve(record(first, ["0"]), 2)
    harder = next(c for c in second if isinstance(c, Problem))
    assert harder.lineage.operator in ("more_steps", "larger_numbers")
    assert harder.generator.distractors == 1  # kept from the parent
    assert exact_check(harder) is None


def test_failure_focus_follows_the_wrong_answers():
    parent = Problem(id="p", question="What is 23 + 48?", answer="71", source="t")
    assert failure_focus(record(parent, ["48"]))[1][0] == "distractor"
    assert failure_focus(record(parent, ["72"]))[1][0] == "larger_numbers"
    assert failure_focus(record(parent, ["500"]))[1][0] == "more_steps"
    # a stated problem only has the distractor operator
    children = ProceduralEvolver(children_per_parent=2).evolve(record(parent, ["500"]), 1)
    assert [c.lineage.operator for c in children] == ["distractor"]
    assert children[0].answer == "71" and children[0].question.endswith(parent.question)


def test_an_axis_at_its_cap_is_skipped():
    parent = generate_seeds(
        "chain_sum", 1, {"min_terms": 12, "max_terms": 12, "min_digits": 10, "max_digits": 10}
    )[0]
    assert dataset_for(parent.generator).config.max_terms == 12
    children = ProceduralEvolver(children_per_parent=3).evolve(record(parent, ["1"]), 1)
    assert [c.lineage.operator for c in children if not isinstance(c, Rejection)] == ["distractor"]
