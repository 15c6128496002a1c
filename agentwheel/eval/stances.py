"""The stance matrix: per branch kind, what the agent did (`envs.stance`) and how often
that passed.

A failed episode fails either because the agent took the wrong stance (declined a task it
should have done, went ahead with one it should have refused) or because it took the
right one and carried it out badly (wrong arguments, a repeated question). Pass rates
alone cannot tell the two apart; the matrix can. Episodes judged before the stance was
recorded count under `unknown` (`agentwheel rejudge` fills it in).
"""

from __future__ import annotations

from collections.abc import Iterable

from agentwheel.core.task import BRANCH_KINDS, RIGHT_STANCE, STANCES
from agentwheel.envs.trajectory import Trajectory

UNKNOWN = "unknown"
# kind -> stance -> {"episodes": n, "passed": k}
StanceMatrix = dict[str, dict[str, dict[str, int]]]


def stance_matrix(trajectories: Iterable[Trajectory]) -> StanceMatrix:
    """Per branch kind (in BRANCH_KINDS order, kinds with episodes only), per stance, how
    many episodes took it and how many of those passed."""
    matrix: StanceMatrix = {}
    for t in trajectories:
        row = matrix.setdefault(t.branch_kind, {s: {"episodes": 0, "passed": 0} for s in STANCES})
        cell = row.setdefault(t.reward.stance or UNKNOWN, {"episodes": 0, "passed": 0})
        cell["episodes"] += 1
        cell["passed"] += int(t.passed)
    return {k: matrix[k] for k in [*BRANCH_KINDS, *sorted(matrix)] if k in matrix}


def right_stance_counts(matrix: StanceMatrix) -> dict[str, dict[str, int]]:
    """Per branch kind: episodes, how many took the kind's right stance, how many of
    those passed."""
    out = {}
    for kind, row in matrix.items():
        right = row.get(RIGHT_STANCE.get(kind, ""), {"episodes": 0, "passed": 0})
        out[kind] = {
            "episodes": sum(c["episodes"] for c in row.values()),
            "right_stance": right["episodes"],
            "passed": right["passed"],
        }
    return out


def stance_lines(matrix: StanceMatrix) -> list[str]:
    """One line per branch kind, `happy (right: went_ahead): went_ahead 5 (1 passed),
    declined 25`, stances no episode took left out."""
    lines = []
    for kind, row in matrix.items():
        cells = [
            f"{s} {c['episodes']}" + (f" ({c['passed']} passed)" if c["passed"] else "")
            for s, c in row.items()
            if c["episodes"]
        ]
        lines.append(f"{kind} (right: {RIGHT_STANCE.get(kind, '?')}): " + ", ".join(cells))
    return lines


def decline_rates(matrix: StanceMatrix) -> dict[str, dict[str, int]]:
    """How often the agent declined tasks whose right stance is to decline (`to_decline`:
    refuse, adversarial) and tasks it should have done or handed off (`to_do`). A policy
    that tells the two apart declines the first far more often; one that declines at the
    same rate on both has only a propensity, which RL can move but not aim."""
    out = {"to_decline": {"declined": 0, "episodes": 0}, "to_do": {"declined": 0, "episodes": 0}}
    for kind, row in matrix.items():
        if kind not in RIGHT_STANCE:
            continue
        side = out["to_decline" if RIGHT_STANCE[kind] == "declined" else "to_do"]
        side["declined"] += row.get("declined", {"episodes": 0})["episodes"]
        side["episodes"] += sum(c["episodes"] for c in row.values())
    return out
