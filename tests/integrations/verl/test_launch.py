"""The verl command for the paper's settings and the Qwen3 presets."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentwheel.integrations.verl.launch import PAPER_SETTINGS, PRESETS, verl_ppo_command
from agentwheel.integrations.verl.reward_fn import compute_score
from agentwheel.integrations.verl.verl_config import LOOP_CONFIG


def overrides(command: list[str]) -> dict[str, str]:
    assert command[1:3] == ["-m", "verl.trainer.main_ppo"]
    return dict(item.lstrip("+").split("=", 1) for item in command[3:])


def test_the_paper_settings_reach_verl():
    got = overrides(verl_ppo_command("qwen3-4b", Path("t.parquet"), Path("v.parquet"), Path("o")))
    assert got["data.train_batch_size"] == "64"
    assert got["actor_rollout_ref.rollout.n"] == "16"
    assert got["actor_rollout_ref.actor.optim.lr"] == "1e-6"
    assert float(got["actor_rollout_ref.actor.clip_ratio_high"]) > float(
        got["actor_rollout_ref.actor.clip_ratio_low"]
    )
    assert got["algorithm.filter_groups.enable"] == "true"
    assert got["algorithm.adv_estimator"] == "grpo"
    assert got["actor_rollout_ref.model.path"] == "Qwen/Qwen3-4B"
    assert got["actor_rollout_ref.rollout.agent.agent_loop_config_path"] == str(LOOP_CONFIG)
    assert Path(got["reward.custom_reward_function.path"]).is_file()


def test_several_nodes_join_a_ray_cluster_and_extra_overrides_win():
    command = verl_ppo_command(
        "qwen3-8b",
        Path("t.parquet"),
        Path("v.parquet"),
        Path("o"),
        model="/models/q8",
        nodes=4,
        ray_address="10.0.0.1:6379",
        extra=("data.train_batch_size=128",),
    )
    got = overrides(command)
    assert got["trainer.nnodes"] == "4" and got["ray_kwargs.ray_init.address"] == "10.0.0.1:6379"
    assert got["actor_rollout_ref.model.path"] == "/models/q8"
    assert got["actor_rollout_ref.rollout.tensor_model_parallel_size"] == "2"
    assert command[-1] == "data.train_batch_size=128"


def test_every_qwen3_size_has_a_preset_and_unknown_ones_are_refused():
    assert set(PRESETS) == {"qwen3-1.7b", "qwen3-4b", "qwen3-8b"}
    with pytest.raises(ValueError, match=r"qwen3-1\.7b"):
        verl_ppo_command("qwen3-70b", Path("t"), Path("v"), Path("o"))
    assert len(set(s.split("=")[0] for s in PAPER_SETTINGS)) == len(PAPER_SETTINGS)


def test_the_fallback_reward_function_stops_with_the_reason():
    with pytest.raises(RuntimeError, match="agentwheel_agent"):
        compute_score("agentwheel/retail", "text", "state", {"task_id": "t1"})
