"""What an answer costs: success with its interval beside latency, tokens and tool calls.

The numbers a user needs to set a small model beside a much larger one on the same
tasks ("does the gap close, and at what price?"): the pass rate over episodes with a 95%
bootstrap interval over tasks, the median and p95 episode latency, the model's share of
it, and the generated tokens and tool calls per episode. Latency is an episode's wall
time from its start to its reward; episodes run batched in lock-step, so with
`--batch-size 1` it is what one user waits, and with larger batches it includes the wait
for the batch. For industrial tasks the reward's components are counted too: answers
right, and answers right with their evidence seen.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from agentwheel.envs.trajectory import Trajectory
from agentwheel.eval.compare import bootstrap_ci


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"median": 0.0, "p95": 0.0, "mean": 0.0}
    array = np.asarray(values, dtype=np.float64)
    return {
        "median": round(float(np.median(array)), 4),
        "p95": round(float(np.percentile(array, 95)), 4),
        "mean": round(float(array.mean()), 4),
    }


def cost_report(trajectories: Sequence[Trajectory]) -> dict[str, Any]:
    """Success (with a 95% interval over tasks), latency, tokens and tool calls per episode."""
    if not trajectories:
        return {"n_episodes": 0}
    by_task: dict[str, list[float]] = defaultdict(list)
    for t in trajectories:
        by_task[t.task_id].append(1.0 if t.passed else 0.0)
    per_task = {task: sum(v) / len(v) for task, v in by_task.items()}
    report: dict[str, Any] = {
        "n_episodes": len(trajectories),
        "success_rate": round(sum(t.passed for t in trajectories) / len(trajectories), 4),
        "success_ci95": list(bootstrap_ci(per_task)),
        "latency_s": _quantiles([t.timings.total_s for t in trajectories]),
        "model_latency_s": _quantiles([t.timings.model_s for t in trajectories]),
        "generated_tokens": _quantiles([float(t.counts.generated_tokens) for t in trajectories]),
        "tool_calls": _quantiles([float(t.counts.tool_calls) for t in trajectories]),
        "agent_turns": _quantiles([float(t.counts.agent_turns) for t in trajectories]),
    }
    answers = [t.reward.answer for t in trajectories if t.reward.answer is not None]
    if answers:
        report["answer_correct_rate"] = round(sum(a.correct for a in answers) / len(answers), 4)
        report["answer_with_evidence_rate"] = round(
            sum(a.correct and a.evidence_seen for a in answers) / len(answers), 4
        )
        report["answer_submitted_rate"] = round(
            sum(a.submitted is not None for a in answers) / len(answers), 4
        )
    return report
