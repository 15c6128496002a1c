import pytest

from agentwheel.flywheels.reasoning.filters import Band, Deduper
from agentwheel.flywheels.reasoning.problem import Lineage, Problem


def p(pid: str, question: str, answer: str = "1") -> Problem:
    return Problem(id=pid, question=question, answer=answer, source="t")


BASE = "Mia buys 3 boxes of 12 eggs and uses 7 eggs for a cake. How many eggs are left?"


def test_exact_duplicates_ignore_case_spacing_and_punctuation():
    dedup = Deduper()
    assert dedup.check(p("a", BASE)) is None
    rejection = dedup.check(
        p(
            "b",
            "  mia buys 3 boxes of 12 eggs, and uses 7 eggs for a cake -- how many eggs are left ",
        )
    )
    assert rejection.stage == "duplicate" and rejection.detail == "as a"
    assert rejection.item == "b" and rejection.context == {"operator": "seed"}


def test_a_rejected_child_names_its_parent_and_operator():
    dedup = Deduper()
    dedup.add(p("a", BASE))
    child = p("a.c", BASE).model_copy(
        update={"lineage": Lineage(parent_id="a", operator="harder_rewrite", round=1)}
    )
    rejection = dedup.check(child)
    assert rejection.context == {"parent_id": "a", "operator": "harder_rewrite"}


def test_near_duplicates_need_the_same_numbers():
    dedup = Deduper(near_threshold=0.6)
    dedup.add(p("a", BASE))
    renamed = BASE.replace("for a cake", "for a big cake")
    near = dedup.check(p("b", renamed))
    assert near is not None and near.stage == "near_duplicate" and "as a" in near.detail
    # the same wording with other numbers is another problem
    assert dedup.check(p("c", BASE.replace("7 eggs", "9 eggs"))) is None
    # one template, same numbers, another answer: "2 horses" and "2 snakes"
    assert dedup.check(p("e", renamed, answer="2")) is None
    # the same numbers in a new story is another problem too
    assert (
        dedup.check(p("d", "A beekeeper has 3 hives of 12 frames and removes 7. How many remain?"))
        is None
    )


def test_first_seen_wins_and_the_pool_is_remembered():
    dedup = Deduper()
    assert [dedup.check(p(str(i), q)) is None for i, q in enumerate([BASE, BASE, "Other 1?"])] == [
        True,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("rate", "inside"), [(0.0, False), (0.25, True), (0.75, True), (1.0, False)]
)
def test_learnable_band_is_strict(rate, inside):
    assert Band().contains(rate) is inside
    rejection = Band().rejection(p("x", BASE), rate)
    assert (rejection is None) is inside
    if rejection is not None:
        assert rejection.stage == "band"
        assert rejection.reason.startswith("too hard" if rate == 0.0 else "too easy")


def test_a_narrower_band():
    band = Band(low=0.25, high=0.75)
    assert [band.contains(r) for r in (0.25, 0.5, 0.75)] == [False, True, False]
