import pytest

from agentwheel.eval.compare import bootstrap_ci, paired_bootstrap


def test_two_tasks_one_gained_one_unchanged_gives_the_hand_computed_interval():
    # diffs (1, 0): a resample of two tasks has mean 0 (p 1/4), 0.5 (p 1/2) or 1 (p 1/4),
    # so the 2.5th percentile is 0 and the 97.5th is 1.
    d = paired_bootstrap({"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 0.0}, resamples=4000)
    assert d.mean == 0.5 and d.ci95 == (0.0, 1.0) and d.n_tasks == 2


def test_a_gain_on_every_task_has_an_interval_of_one_point():
    after = {f"t{i}": 1.0 for i in range(5)}
    before = {f"t{i}": 0.0 for i in range(5)}
    assert paired_bootstrap(after, before).ci95 == (1.0, 1.0)


def test_pairs_by_task_and_ignores_tasks_only_one_side_scored():
    after = {"a": 1.0, "b": 1.0, "c": 0.0, "only_after": 1.0}
    before = {"a": 0.0, "b": 1.0, "c": 0.0, "only_before": 0.0}
    d = paired_bootstrap(after, before, resamples=2000, seed=3)
    assert d.n_tasks == 3 and d.mean == pytest.approx(1 / 3, abs=1e-4)
    assert d.ci95[0] == 0.0 and d.ci95[1] == 1.0


def test_no_shared_task_is_an_error():
    with pytest.raises(ValueError, match="share no task"):
        paired_bootstrap({"a": 1.0}, {"b": 0.0})


def test_bootstrap_ci_of_two_tasks_is_the_hand_computed_interval():
    # Means of two draws from {1, 0}: 0 (1/4), 0.5 (1/2), 1 (1/4): the 2.5th percentile is
    # 0 and the 97.5th is 1.
    assert bootstrap_ci({"a": 1.0, "b": 0.0}, resamples=4000) == (0.0, 1.0)
    assert bootstrap_ci({"a": 1.0, "b": 1.0, "c": 1.0}) == (1.0, 1.0)
    lo, hi = bootstrap_ci({str(i): float(i < 30) for i in range(100)}, seed=1)
    assert lo < 0.3 < hi and hi - lo < 0.25
    with pytest.raises(ValueError):
        bootstrap_ci({})
