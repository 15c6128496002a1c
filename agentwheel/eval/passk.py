"""pass^k: the chance that k independent trials of a task all pass (tau-bench's metric).

With n trials of which c passed, the unbiased estimate for one task is C(c, k) / C(n, k);
the dataset's pass^k is the mean over tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import comb


def pass_hat_k_task(successes: int, trials: int, k: int) -> float:
    if not 1 <= k <= trials:
        raise ValueError(f"k must be in 1..{trials}, got {k}")
    return comb(successes, k) / comb(trials, k)


def pass_hat_k(results: Mapping[str, Sequence[bool]], k: int) -> float:
    """Mean pass^k over tasks; `results` maps task id to its trials' outcomes."""
    if not results:
        return 0.0
    return sum(pass_hat_k_task(sum(r), len(r), k) for r in results.values()) / len(results)


def pass_hat_curve(results: Mapping[str, Sequence[bool]], max_k: int) -> dict[int, float]:
    return {k: pass_hat_k(results, k) for k in range(1, max_k + 1)}
