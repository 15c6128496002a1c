import threading
import time

import pytest

from agentwheel.flywheels.reasoning.grading import grade
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.verify import answers_match, is_checkable
from agentwheel.settings.answer_format import AnswerFormat

PATHOLOGICAL = "(10^{10^{5}})!"  # SymPy tries to evaluate the factorial of a 100001-digit number


@pytest.mark.parametrize(
    ("gold", "predicted"),
    [
        ("1/2", "0.5"),
        ("0.5", "\\frac{1}{2}"),
        ("\\frac{1}{2}", "1/2"),
        ("\\frac12", "0.5"),
        ("1/2", "\\boxed{\\frac{1}{2}}"),
        ("12", "12 dollars"),
        ("12", "\\$12"),
        ("7", "so the answer is 7."),
        ("1000", "1,000"),
        ("3", "3.0"),
        ("-3", "\u22123"),
        ("x^2+1", "1 + x^2"),
        ("Yes", "yes."),
    ],
)
def test_equivalent_answers_match(gold, predicted):
    assert answers_match(gold, predicted, timeout_s=2).equal


@pytest.mark.parametrize(
    ("gold", "predicted"), [("1/2", "0.25"), ("7", "so the answer is 8."), ("12", "21"), ("3", "")]
)
def test_different_answers_do_not_match(gold, predicted):
    assert not answers_match(gold, predicted, timeout_s=2).equal


def test_pathological_input_times_out_instead_of_hanging():
    started = time.monotonic()
    match = answers_match(PATHOLOGICAL, "5", timeout_s=1)
    assert match.status == "timeout" and not match.equal
    assert time.monotonic() - started < 5


def test_checks_off_the_main_thread_are_guarded_too():
    results = []

    def work():
        results.append(answers_match("1/2", "0.5", timeout_s=1))
        results.append(answers_match(PATHOLOGICAL, "5", timeout_s=1))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=60)
    assert [r.status for r in results] == ["equal", "timeout"]


def test_is_checkable():
    assert is_checkable("42") and is_checkable("\\frac{3}{4}") and is_checkable("2\\sqrt{2}")
    assert not is_checkable("a good question") and not is_checkable("")


def _stated(answer: str) -> Problem:
    return Problem(id="p", question="How much?", answer=answer, source="test")


@pytest.mark.parametrize(
    ("text", "correct", "followed"),
    [
        ("Half of it is \\boxed{\\frac{1}{2}}.", True, True),
        ("It is 1/2 of the cake, so the answer is 0.5.", True, False),
        ("I think \\boxed{0.25}", False, True),
        ("no idea", False, False),
    ],
)
def test_grade_extracts_then_verifies(text, correct, followed):
    verdict = grade(_stated("1/2"), text, AnswerFormat())
    assert (verdict.correct, verdict.followed_format) == (correct, followed)
    assert verdict.checked_by in ("math_verify", "none")


def test_grade_with_a_strict_format_needs_the_wrapper():
    verdict = grade(_stated("7"), "the answer is 7", AnswerFormat(lenient=False))
    assert not verdict.correct and verdict.status == "no_answer"
