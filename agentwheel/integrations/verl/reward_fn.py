"""The reward function to name in verl's config for agentwheel rows
(`reward.custom_reward_function.path` = this file, `name` = `compute_score`).

agentwheel's reward is decided by the environment's final state, which only the agent loop
sees, so `agentwheel_agent` sets every sample's `reward_score` and verl's reward manager
never calls a scoring function for it. If this one is called, a row reached verl without
going through our loop (a wrong `agent_name`, or a loop config file that was not loaded);
scoring its text would be meaningless, so it stops the run and says why.
"""

from __future__ import annotations

from typing import Any


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **_: Any,
) -> float:
    task = (extra_info or {}).get("task_id", "?")
    raise RuntimeError(
        f"{data_source} task {task} reached verl's reward manager unscored: agentwheel rows "
        "are scored by the agentwheel_agent loop from the environment's state. Check that "
        "the rows' agent_name is agentwheel_agent and that "
        "actor_rollout_ref.rollout.agent.agent_loop_config_path names agent_loops.yaml."
    )
