"""One GRPO step of the study, profiled, and its training cost per trainer variant.

The step is the study's: `--groups` tasks (one per branch kind in turn) x `--group-size`
sampled rollouts (temperature 1, 64 new tokens a turn, 5 agent turns), then one update.
The rollouts run twice on the same seeds, profiled (prefill, decode, the rest of model
time, environment and user): `main`, every row of a batch decoding until its longest
reply ends (as `generate` does), and `leave_early`, finished rows leaving the batch; the
episodes must come out the same. `one_call` is `leave_early` with the step's episodes in
one batched call a turn (48, the study's batch now) instead of calls of 16: its sampled
ids differ (a call's seed covers the whole call), so its episodes are other draws of the
same policy. The update runs on copies of the same weights, on the
same groups, once per variant:

- `main`: the trainer as it was at 70174d9 (the baseline): a full fine-tune, a no-grad
  pass over every token for the recomputed old log-probs, then the training forward and
  backward;
- `reuse`: the old log-probs are the training forward's own (one update per batch);
- `shared`: `reuse`, and each group's shared prompt computed once in forward and backward;
- `lora`: `shared` with rank-16 LoRA on every linear layer (the study's setting).

Tokens per episode are split into policy text, tool schemas and the conversation. The
step speedup is (main rollouts + main update) / (best rollouts + best update), measured in
one run.

    python bench/bench_grpo_step.py [--policy hf:runs/study/shared/checkpoints/sft/model]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from bench_rollout import ForwardTimer
from machine import write_result

from agentwheel.core.dataset import load_tasks
from agentwheel.core.messages import ChatRequest, Message, SamplingParams
from agentwheel.core.run_layout import TASKS_FILE
from agentwheel.core.task import BRANCH_KINDS, Task
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.user import ScriptedUser
from agentwheel.flywheels.agentic.synth import synth_agentic
from agentwheel.llm.default_model import load_hf_spec
from agentwheel.llm.hf import HFChatModel
from agentwheel.settings.runner import RunnerConfig
from agentwheel.settings.trainer import GRPOConfig, LoraSettings
from agentwheel.train.grpo import GRPOTrainer
from agentwheel.train.rollout import TurnSeededPolicy

TRAIN_WORKFLOWS = ("retail_order_cancel", "banking_transfer", "airline_flight_change")


class SeparateRecompute(GRPOTrainer):
    """The trainer at 70174d9: old log-probs from a no-grad pass of their own."""

    def _old_is_current_forward(self) -> bool:
        return False


# name: (trainer, LoRA, shared prompts)
VARIANTS: dict[str, tuple[type[GRPOTrainer], LoraSettings | None, bool]] = {
    "main": (SeparateRecompute, None, False),
    "reuse": (GRPOTrainer, None, False),
    "shared": (GRPOTrainer, None, True),
    "lora": (GRPOTrainer, LoraSettings(rank=16, alpha=32.0), True),
}


def step_tasks(groups: int) -> list[Task]:
    with tempfile.TemporaryDirectory() as tmp:
        paths = [f"agentwheel/data/workflows/{w}.yaml" for w in TRAIN_WORKFLOWS]
        synth_agentic(Path(tmp), paths, tasks_per_workflow=5, seed=11)
        tasks = load_tasks(Path(tmp) / TASKS_FILE).tasks
    by_kind = {k: [t for t in tasks if t.branch_kind == k] for k in BRANCH_KINDS}
    return [by_kind[BRANCH_KINDS[i % 5]][i // 5] for i in range(groups)]


def prompt_split(model: HFChatModel, task: Task) -> dict[str, int]:
    """Opening-prompt tokens: policy text (system message), tool schemas, the request."""
    tokenizer = model.tokenizer
    system = [Message(role="system", content=task.instruction)]
    opening = [*system, Message(role="user", content=task.user.request)]
    schemas = [t.openai_schema() for t in task.tools]

    def count(messages: list[Message], tools: list[dict[str, Any]] | None) -> int:
        text = tokenizer.apply_chat_template(
            [m.openai_dict() for m in messages], tools=tools, tokenize=False
        )
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    with_tools = count(opening, schemas)
    without_tools = count(opening, None)
    system_only = count(system, None)
    return {
        "policy_text": system_only,
        "tool_schemas": with_tools - without_tools,
        "request": without_tools - system_only,
        "opening_total": with_tools,
    }


# name: (finished rows leave the batch, episodes per batched call)
ROLLOUTS: dict[str, tuple[bool, int]] = {
    "main": (False, 16),
    "leave_early": (True, 16),
    "one_call": (True, 48),
}


def rollouts(
    model: HFChatModel, tasks: list[Task], group_size: int, seed: int, variant: str
) -> tuple[list[list[Trajectory]], dict[str, Any]]:
    assert model.prefix_reuse is not None, "the study's sampler reuses prefixes"
    leave_early, batch = ROLLOUTS[variant]
    model.prefix_reuse.leave_early = leave_early
    model.max_batch_size = batch
    timer = ForwardTimer(model.model)
    params = SamplingParams(temperature=1.0, max_new_tokens=64, seed=seed)
    policy = TurnSeededPolicy(model, params, name="policy")
    runner = EpisodeRunner(
        policy,
        ScriptedUser(),
        RunnerConfig(max_agent_turns=5, max_episode_tokens=3072, batch_size=batch),
    )
    specs = [EpisodeSpec(task=t, trial=i) for t in tasks for i in range(group_size)]
    model.release_kv_cache()
    start = time.perf_counter()
    done = runner.run(specs)
    wall = time.perf_counter() - start
    timer.remove()
    groups = [[tr for tr in done if tr.task_id == t.id] for t in tasks]
    model_s = sum(t.timings.model_s for t in done)
    splits = [prompt_split(model, t) for t in tasks]
    n = len(done)
    profile = {
        "batch_size": batch,
        "episodes": n,
        "wall_s": round(wall, 2),
        "split_s": {
            "prefill": round(timer.seconds["prefill"], 2),
            "decode": round(timer.seconds["decode"], 2),
            "model_other": round(model_s - sum(timer.seconds.values()), 2),
            "env_and_user": round(sum(t.timings.env_s + t.timings.user_s for t in done), 2),
        },
        "forward_tokens": dict(timer.tokens),
        "tokens_per_episode": {
            "total": round(sum(len(t.tokens.ids) for t in done if t.tokens) / n),
            "generated": round(sum(t.counts.generated_tokens for t in done) / n, 1),
            **{k: round(sum(s[k] for s in splits) / len(splits)) for k in splits[0]},
        },
        "mean_agent_turns": round(sum(t.counts.agent_turns for t in done) / n, 2),
        "reward_mean": round(sum(t.passed for t in done) / n, 3),
    }
    return groups, profile


def warm_up(model: HFChatModel) -> None:
    """One short call, so one-time kernel setup is not charged to the first variant."""
    request = ChatRequest(messages=[Message(role="user", content="Hello there")])
    model.chat([request], SamplingParams(max_new_tokens=8))
    model.release_kv_cache()


def update(
    weights: torch.nn.Module, groups: list[list[Trajectory]], variant: str
) -> dict[str, Any]:
    trainer_class, lora, share = VARIANTS[variant]
    config = GRPOConfig(
        lr=1e-4 if lora else 1e-5,
        old_logprobs="recompute",
        compute_dtype="bfloat16" if _has_native_bf16() else "float32",
        micro_batch_tokens=4400,
        max_seq_len=3072,
        dynamic_sampling=False,  # every group trains, whatever the rewards drawn
        lora=lora,
        share_prefixes=share,
    )
    trainer = trainer_class(copy.deepcopy(weights), config)
    start = time.perf_counter()
    metrics = trainer.step(groups)
    wall = time.perf_counter() - start
    return {
        "wall_s": round(wall, 2),
        "trained_tokens": metrics.trained_tokens,
        "compute_dtype": config.compute_dtype,
        "grad_norm": round(metrics.grad_norm, 4),
    }


def _has_native_bf16() -> bool:
    from agentwheel.llm.half_precision import cpu_has_native

    return cpu_has_native("bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default="hf:default")
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--result", default="grpo_step", help="bench/results/<name>.json (one per CPU kind)"
    )
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    tasks = step_tasks(args.groups)
    dtype = "bfloat16" if _has_native_bf16() else "float32"
    sampler = load_hf_spec(args.policy, dtype=dtype, max_batch_size=16)
    warm_up(sampler)
    profiles = {}
    for variant in ROLLOUTS:
        drawn, profiles[variant] = rollouts(sampler, tasks, args.group_size, args.seed, variant)
        print(f"rollouts {variant}: {profiles[variant]}", flush=True)
        episodes = [[tr.tokens.ids if tr.tokens else None for tr in g] for g in drawn]
        if variant == "main":
            groups, main_episodes = drawn, episodes
        elif variant == "leave_early" and episodes != main_episodes:
            raise SystemExit("rollouts differ when finished rows leave the batch")
    weights = load_hf_spec(args.policy, dtype="float32").model
    updates = {}
    for variant in VARIANTS:
        updates[variant] = update(weights, groups, variant)
        print(f"update {variant}: {updates[variant]}", flush=True)
    best = min(updates, key=lambda v: updates[v]["wall_s"])
    best_rollouts = min(profiles, key=lambda v: profiles[v]["wall_s"])
    step_main = profiles["main"]["wall_s"] + updates["main"]["wall_s"]
    step_best = profiles[best_rollouts]["wall_s"] + updates[best]["wall_s"]
    result = {
        "policy": args.policy,
        "sampler_dtype": dtype,
        "groups": args.groups,
        "group_size": args.group_size,
        "rollouts": profiles,
        "updates": updates,
        "baseline": (
            "main: rollouts in calls of 16 episodes, decoding every row of a batch to its "
            "end (as generate does), and the trainer at 70174d9 (full fine-tune, separate "
            "old-logprob pass)"
        ),
        "best_rollouts": best_rollouts,
        "rollout_speedup": round(profiles["main"]["wall_s"] / profiles[best_rollouts]["wall_s"], 2),
        "best_update": best,
        "update_speedup": round(updates["main"]["wall_s"] / updates[best]["wall_s"], 2),
        "step_s": {"main": round(step_main, 2), "best": round(step_best, 2)},
        "speedup": round(step_main / step_best, 2),
    }
    print(f"step {step_main:.1f}s -> {step_best:.1f}s: speedup {result['speedup']}x")
    write_result(args.result, result)


if __name__ == "__main__":
    main()
