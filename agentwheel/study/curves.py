"""An RL arm's learning curves, read from its run's metrics.jsonl: held-out pass^1 after
every round (from the SFT start), and per GRPO step the rollout reward, entropy, KL, tool
calls per episode and the branch-kind mix of the batch with the reward per kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentwheel.core.task import BRANCH_KINDS
from agentwheel.train.report import read_metrics

STEP_KEYS = (
    "rollout_reward_mean",
    "entropy",
    "approx_kl",
    "ref_kl",
    "rollout_tool_calls_mean",
    "rollout_groups_informative",
    "rollout_groups_dropped",
)


def arm_curves(run_dir: Path) -> dict[str, Any]:
    """{"evals": [{round, step, held_out_pass1, per kind...}], "steps": [{step, ...}]}."""
    metrics = read_metrics(run_dir)
    evals = [
        {
            "round": m["round"],
            "step": m["step"],
            "held_out_pass1": m["held_out_pass1"],
            **{k: v for k, v in m.items() if k.startswith("held_out_pass1_kind_")},
        }
        for m in metrics
        if m.get("stage") == "eval"
    ]
    kind_keys = [f"{p}_{k}" for k in BRANCH_KINDS for p in ("batch_groups", "rollout_reward")]
    steps = [
        {
            "step": m["global_step"],
            "round": m["round"],
            **{k: m[k] for k in (*STEP_KEYS, *kind_keys) if k in m},
        }
        for m in metrics
        if m.get("stage") == "grpo"
    ]
    return {"evals": evals, "steps": steps}
