import pytest

from agentwheel.eval.passk import pass_hat_curve, pass_hat_k, pass_hat_k_task


def test_pass_hat_k_matches_the_combinatorial_estimate():
    # 3 of 4 trials passed: pass^1 = 3/4, pass^2 = C(3,2)/C(4,2) = 1/2, pass^4 = 0.
    assert pass_hat_k_task(3, 4, 1) == 0.75
    assert pass_hat_k_task(3, 4, 2) == 0.5
    assert pass_hat_k_task(3, 4, 4) == 0.0
    assert pass_hat_k_task(4, 4, 4) == 1.0


def test_dataset_pass_hat_k_is_the_mean_over_tasks():
    results = {"a": [True, True], "b": [True, False], "c": [False, False]}
    assert pass_hat_curve(results, 2) == {1: 0.5, 2: pytest.approx(1 / 3)}
    assert pass_hat_k({}, 1) == 0.0


def test_k_larger_than_trials_is_an_error():
    with pytest.raises(ValueError):
        pass_hat_k_task(1, 2, 3)
