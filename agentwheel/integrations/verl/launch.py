"""verl PPO/GRPO runs on agentwheel tasks: the paper's settings, Qwen3 presets, the command.

`verl_ppo_command` builds the `python -m verl.trainer.main_ppo` command line (hydra
overrides) for a preset on one node or several: our export as the data, our agent loop
(`agent_loops.yaml`), our reward (set by the loop; `reward_fn` guards the fallback), and
the paper's GRPO settings — batch 64 tasks, 16 rollouts per task, lr 1e-6, clip-higher
(ε_low 0.2, ε_high 0.28), dynamic sampling (groups whose rewards are all equal are dropped
and more are generated). Several nodes: start a Ray cluster first (`ray start --head` on
one, `ray start --address=<head>:6379` on the others) and pass its address.

    python -m agentwheel.integrations.verl.launch --preset qwen3-1.7b \\
        --model /models/Qwen3-1.7B --train train.parquet --val val.parquet --out runs/verl
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from agentwheel.integrations.verl.verl_config import LOOP_CONFIG, loop_overrides

REWARD_FN = Path(__file__).with_name("reward_fn.py")

PAPER_SETTINGS: tuple[str, ...] = (
    "algorithm.adv_estimator=grpo",
    "data.train_batch_size=64",
    "actor_rollout_ref.rollout.n=16",
    "actor_rollout_ref.actor.optim.lr=1e-6",
    "actor_rollout_ref.actor.ppo_mini_batch_size=64",
    "actor_rollout_ref.actor.clip_ratio_low=0.2",
    "actor_rollout_ref.actor.clip_ratio_high=0.28",
    "actor_rollout_ref.actor.loss_agg_mode=token-mean",
    "actor_rollout_ref.actor.use_kl_loss=false",
    "algorithm.use_kl_in_reward=false",
    "algorithm.filter_groups.enable=true",
    "algorithm.filter_groups.metric=reward",
)
"""The paper's GRPO settings as verl overrides (AgenticQwen, Lyu et al. 2026)."""


@dataclass(frozen=True)
class Preset:
    """How one model size fits a node of 80 GB GPUs."""

    hub_name: str
    tensor_parallel: int
    micro_batch_per_gpu: int
    gpu_memory_utilization: float = 0.6
    prompt_length: int = 4096
    response_length: int = 8192


PRESETS: dict[str, Preset] = {
    "qwen3-1.7b": Preset("Qwen/Qwen3-1.7B", tensor_parallel=1, micro_batch_per_gpu=8),
    "qwen3-4b": Preset("Qwen/Qwen3-4B", tensor_parallel=1, micro_batch_per_gpu=4),
    "qwen3-8b": Preset("Qwen/Qwen3-8B", tensor_parallel=2, micro_batch_per_gpu=2),
}


def verl_ppo_command(
    preset: str,
    train: Path,
    val: Path,
    out_dir: Path,
    model: str | None = None,
    steps: int = 100,
    nodes: int = 1,
    gpus_per_node: int = 8,
    ray_address: str | None = None,
    agent_loop_config: Path = LOOP_CONFIG,
    extra: tuple[str, ...] = (),
    python: str = sys.executable,
    entrypoint: str = "verl.trainer.main_ppo",
) -> list[str]:
    """`python -m entrypoint` with the overrides for `preset`; `extra` overrides come last
    and win."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    micro = p.micro_batch_per_gpu
    overrides = [
        *loop_overrides(model or p.hub_name, p.prompt_length, p.response_length, agent_loop_config),
        *PAPER_SETTINGS,
        "actor_rollout_ref.rollout.name=vllm",
        f"actor_rollout_ref.rollout.tensor_model_parallel_size={p.tensor_parallel}",
        f"actor_rollout_ref.rollout.gpu_memory_utilization={p.gpu_memory_utilization}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={micro}",
        # Qwen3 without thinking: the agent acts in tool calls and short replies.
        "+data.apply_chat_template_kwargs.enable_thinking=false",
        f"data.train_files={Path(train).resolve()}",
        f"data.val_files={Path(val).resolve()}",
        f"reward.custom_reward_function.path={REWARD_FN}",
        "reward.custom_reward_function.name=compute_score",
        f"trainer.total_training_steps={steps}",
        f"trainer.nnodes={nodes}",
        f"trainer.n_gpus_per_node={gpus_per_node}",
        f"trainer.default_local_dir={Path(out_dir).resolve()}",
        "trainer.save_freq=10",
        "trainer.test_freq=10",
        "trainer.resume_mode=auto",
        "trainer.project_name=agentwheel",
        f"trainer.experiment_name={preset}",
        "trainer.logger=[console]",
    ]
    if ray_address:
        overrides.append(f"+ray_kwargs.ray_init.address={ray_address}")
    return [python, "-m", entrypoint, *overrides, *extra]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the verl command for an agentwheel run.")
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--model", help="local path (default: the preset's hub name)")
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--ray-address", help="an existing Ray cluster (several nodes)")
    parser.add_argument("extra", nargs="*", help="more hydra overrides (they win)")
    args = parser.parse_args(argv)
    command = verl_ppo_command(
        args.preset,
        args.train,
        args.val,
        args.out,
        model=args.model,
        steps=args.steps,
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        ray_address=args.ray_address,
        extra=tuple(args.extra),
    )
    print(shlex.join(command))


if __name__ == "__main__":
    main()
