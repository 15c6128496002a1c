"""Rollout speed: one held-out eval, prompts re-read every turn vs keys/values kept.

Both arms run the same greedy eval of a policy (scripted user) in one process and on one
copy of the weights: the baseline is `HFChatModel` with
`kv_reuse=False` (`model.generate` on every whole prompt), the other keeps each prompt's
keys/values and shares common prefixes (`agentwheel.llm.kv_generation`). Each arm's
model time is split into prefill (forward calls over several positions), decode (one
position) and the rest (sampling, cache bookkeeping, rendering, parsing); environment and
user time are reported apart. A smaller float32 run checks that greedy completions are
identical token for token (in bfloat16 rounding may flip a near-tie, so there the check
is pass^1 within one task).

Each `--policy` is one scenario: `hf:default` (zero-shot: it rarely calls a tool, so an
episode is about one agent turn) or `hf:<checkpoint dir>` (a trained policy, e.g. the
`checkpoints/sft/model` of `agentwheel train --config demo --set 'rounds=[]'`: several
agent turns per episode, the case keys/values are kept for). `--tasks synth` evaluates
new tasks of every bundled workflow (`--synth-per-workflow` each, seed `--synth-seed`,
another seed than the demo's train pool); else a tasks file or `fixtures`.

    python bench/bench_rollout.py [--policy hf:runs/x/checkpoints/sft/model] [--policy hf:default]
        [--tasks synth] [--limit 32] [--batch-size 32] [--f32-limit 8]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from machine import write_result

from agentwheel.core.dataset import load_tasks
from agentwheel.core.messages import SamplingParams
from agentwheel.core.run_layout import TASKS_FILE
from agentwheel.core.task import Task
from agentwheel.envs.agent import ModelPolicy
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.user import ScriptedUser
from agentwheel.flywheels.agentic.synth import synth_agentic
from agentwheel.llm.default_model import load_hf_spec
from agentwheel.llm.hf import HFChatModel
from agentwheel.settings.runner import RunnerConfig


class ForwardTimer:
    """Wraps a module's `forward` to add up time and tokens of prefill and decode calls.
    Decode: one position per row."""

    def __init__(self, module: Any):
        self.reset()
        inner = module.forward

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
            width = ids.shape[1]
            decode = width == 1
            kind = "decode" if decode else "prefill"
            start = time.perf_counter()
            out = inner(*args, **kwargs)
            self.seconds[kind] += time.perf_counter() - start
            self.tokens[kind] += int(ids.numel())
            self.calls[kind] += 1
            return out

        module.forward = timed
        self.module = module

    def remove(self) -> None:
        """Stop timing: the module's own `forward` again."""
        del self.module.forward

    def reset(self) -> None:
        self.seconds = {"prefill": 0.0, "decode": 0.0}
        self.tokens = {"prefill": 0, "decode": 0}
        self.calls = {"prefill": 0, "decode": 0}


def mixed_tasks(tasks: list[Task], limit: int) -> list[Task]:
    """`limit` tasks taking the domains in turn, so a batch mixes system prompts."""
    by_domain: dict[str, list[Task]] = {}
    for task in tasks:
        by_domain.setdefault(task.domain, []).append(task)
    queues = list(by_domain.values())
    mixed = [q[i] for i in range(max(map(len, queues))) for q in queues if i < len(q)]
    return mixed[:limit]


def run_eval(
    model: HFChatModel, timer: ForwardTimer, tasks: list[Task], args: argparse.Namespace
) -> tuple[dict[str, Any], list[Trajectory]]:
    policy = ModelPolicy(model, SamplingParams(max_new_tokens=args.max_new_tokens))
    config = RunnerConfig(max_agent_turns=args.max_turns, batch_size=args.batch_size)
    runner = EpisodeRunner(policy, ScriptedUser(), config)
    model.release_kv_cache()
    timer.reset()
    start = time.perf_counter()
    trajectories = sorted(runner.run([EpisodeSpec(t) for t in tasks]), key=lambda t: t.task_id)
    wall = time.perf_counter() - start
    model_s = sum(t.timings.model_s for t in trajectories)
    n = len(trajectories)
    row = {
        "kv_reuse": model.kv_reuse,
        "episodes": n,
        "wall_s": round(wall, 2),
        "episodes_per_s": round(n / wall, 4),
        "pass_1": sum(t.passed for t in trajectories) / n,
        "passed": sum(t.passed for t in trajectories),
        "split_s": {
            "prefill": round(timer.seconds["prefill"], 2),
            "decode": round(timer.seconds["decode"], 2),
            "model_other": round(model_s - sum(timer.seconds.values()), 2),
            "env_and_user": round(sum(t.timings.env_s + t.timings.user_s for t in trajectories), 2),
        },
        "forward_tokens": dict(timer.tokens),
        "forward_calls": dict(timer.calls),
        "mean_agent_turns": round(sum(t.counts.agent_turns for t in trajectories) / n, 2),
        "mean_episode_tokens": round(sum(len(t.tokens.ids) for t in trajectories if t.tokens) / n),
        "mean_generated_tokens": round(sum(t.counts.generated_tokens for t in trajectories) / n, 1),
    }
    return row, trajectories


def identical_tokens(a: list[Trajectory], b: list[Trajectory]) -> tuple[int, int, float]:
    """(episodes whose whole token trace is identical, episodes, largest log-prob gap
    over the generated tokens of the identical ones)."""
    same, gap = 0, 0.0
    for x, y in zip(a, b, strict=True):
        if x.task_id == y.task_id and x.tokens and y.tokens and x.tokens.ids == y.tokens.ids:
            same += 1
            pairs = zip(x.tokens.logprobs, y.tokens.logprobs, strict=True)
            gap = max([gap, *(abs(p - q) for p, q in pairs)])
    return same, len(a), gap


def compare(policy: str, dtype: str, tasks: list[Task], args: argparse.Namespace) -> dict[str, Any]:
    baseline = load_hf_spec(policy, dtype=dtype, max_batch_size=args.batch_size)
    baseline = HFChatModel(
        baseline.model,
        baseline.tokenizer,
        name=baseline.name,
        template=baseline.renderer.template,
        max_batch_size=args.batch_size,
        kv_reuse=False,
    )
    reuse = HFChatModel(
        baseline.model,
        baseline.tokenizer,
        name=baseline.name,
        template=baseline.renderer.template,
        max_batch_size=args.batch_size,
        kv_reuse=True,
    )
    timer = ForwardTimer(baseline.model)
    rows: dict[str, list[dict[str, Any]]] = {"baseline": [], "kv_reuse": []}
    traces: dict[str, list[Trajectory]] = {}
    load = {"before": os.getloadavg()}
    for _ in range(args.repeats):  # arms alternate, so load drifts hit both
        for arm, model in (("baseline", baseline), ("kv_reuse", reuse)):
            row, traces[arm] = run_eval(model, timer, tasks, args)
            rows[arm].append(row)
            print(f"  {policy} {dtype} {arm:>8}: {row}", flush=True)
    load["after"] = os.getloadavg()
    same, n, gap = identical_tokens(traces["baseline"], traces["kv_reuse"])
    rate = {arm: sum(r["episodes_per_s"] for r in rs) / len(rs) for arm, rs in rows.items()}
    return {
        "dtype": dtype,
        # what ran: a CPU without native bf16 runs a bf16 request in float32
        "dtype_run": str(next(baseline.model.parameters()).dtype).removeprefix("torch."),
        "tasks": len(tasks),
        "load_average_1_5_15": load,
        "arms": rows,
        "episodes_per_s": {arm: round(r, 4) for arm, r in rate.items()},
        "speedup": round(rate["kv_reuse"] / rate["baseline"], 3),
        "pass_1": {arm: rs[-1]["pass_1"] for arm, rs in rows.items()},
        "identical_episodes": f"{same}/{n}",
        "greedy_identical": same == n,
        "max_logprob_gap_identical_episodes": gap,
    }


def evaluation_tasks(args: argparse.Namespace) -> list[Task]:
    if args.tasks != "synth":
        return load_tasks(args.tasks).tasks
    with tempfile.TemporaryDirectory() as out:
        synth_agentic(Path(out), seed=args.synth_seed, tasks_per_workflow=args.synth_per_workflow)
        return load_tasks(Path(out) / TASKS_FILE).tasks


def scenario(policy: str, tasks: list[Task], args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"policy": policy}
    for dtype, limit in (("bfloat16", args.limit), ("float32", args.f32_limit)):
        if limit > 0:
            result[dtype] = compare(policy, dtype, mixed_tasks(tasks, limit), args)
            print(f"{policy} {dtype}: speedup {result[dtype]['speedup']}x", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", action="append", help="hf: spec (repeatable)")
    parser.add_argument("--tasks", default="fixtures", help="fixtures, synth or a tasks file")
    parser.add_argument("--synth-per-workflow", type=int, default=4)
    parser.add_argument("--synth-seed", type=int, default=2027)
    parser.add_argument("--limit", type=int, default=32, help="tasks of the bfloat16 run")
    parser.add_argument("--f32-limit", type=int, default=8, help="tasks of the float32 check")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-turns", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--name", default="rollout_kv", help="result file name")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads for both arms (0: torch's default)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    policies = args.policy or ["hf:default"]
    tasks = evaluation_tasks(args)
    result: dict[str, Any] = {
        "task_source": args.tasks,
        "torch_threads": torch.get_num_threads(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("tasks", "policy")},
        "goal_speedup": 3.0,
        "scenarios": [],
    }
    for policy in policies:
        result["scenarios"].append(scenario(policy, tasks, args))
        # The headline is the first scenario's (list the trained policy first); the file
        # is rewritten after each scenario, so an interrupted run keeps what it measured.
        first = result["scenarios"][0]
        if "bfloat16" in first:
            result["speedup"] = first["bfloat16"]["speedup"]
            result["speedup_policy"] = first["policy"]
        path = write_result(args.name, result)
        print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
