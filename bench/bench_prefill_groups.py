"""Held-out eval time: new ids prefilled in one pass over every row vs in groups.

Both arms keep keys/values across turns (`agentwheel.llm.kv_generation`) and run the same
greedy eval of a trained policy in one process, on one copy of the weights, alternating.
The baseline (`prefill_in_groups=False`) is the generator before groups: one forward
pass computes `rows x longest new segment` positions, and the prefixes several prompts
share are computed side by side (a system prompt shared by prompts whose tools come in
other orders once per order). The other arm splits the rows into groups of similar new
length and computes shared prefixes nested, shortest first. Episodes are compared token
by token (the arithmetic of a row changes only with its group's padding).

    python bench/bench_prefill_groups.py \\
        --tasks runs/study/shared/data/held_out/tasks.jsonl \\
        --policy hf:runs/study/shared/checkpoints/sft/model --limit 48 --batch-size 48
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from bench_rollout import ForwardTimer, identical_tokens, run_eval
from machine import write_result

from agentwheel.core.dataset import load_tasks
from agentwheel.llm.default_model import load_hf_spec


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", required=True, help="tasks file (e.g. a study's held-out set)")
    parser.add_argument("--policy", required=True, help="hf: spec of a trained policy")
    parser.add_argument("--dtype", default="bfloat16", help="float32 where the CPU lacks bf16")
    parser.add_argument("--limit", type=int, default=48)
    parser.add_argument("--skip", type=int, default=0, help="tasks to skip first")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--max-turns", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--name", default="prefill_groups", help="result file name")
    args = parser.parse_args()
    tasks = load_tasks(args.tasks).tasks[args.skip : args.skip + args.limit]
    model = load_hf_spec(args.policy, dtype=args.dtype, max_batch_size=args.batch_size)
    generator = model.prefix_reuse
    if generator is None:
        raise SystemExit(f"{args.policy} cannot reuse keys/values: nothing to compare")
    timer = ForwardTimer(model.model)
    rows: dict[str, dict[str, Any]] = {}
    traces = {}
    load = {"before": os.getloadavg()}
    for arm, grouped in (("one_pass", False), ("groups", True)):
        generator.prefill_in_groups = grouped
        positions_before = generator.prefill_positions
        rows[arm], traces[arm] = run_eval(model, timer, tasks, args)
        rows[arm]["prefill_positions"] = generator.prefill_positions - positions_before
        print(f"{arm}: {rows[arm]}", flush=True)
    load["after"] = os.getloadavg()
    same, n, gap = identical_tokens(traces["one_pass"], traces["groups"])
    result = {
        "policy": args.policy,
        "tasks_file": args.tasks,
        "dtype_run": str(next(model.model.parameters()).dtype).removeprefix("torch."),
        "torch_threads": torch.get_num_threads(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("tasks", "policy")},
        "load_average_1_5_15": load,
        "arms": rows,
        "speedup": round(rows["one_pass"]["wall_s"] / rows["groups"]["wall_s"], 3),
        "prefill_positions_ratio": round(
            rows["one_pass"]["prefill_positions"] / rows["groups"]["prefill_positions"], 3
        ),
        "identical_episodes": f"{same}/{n}",
        "max_logprob_gap_identical_episodes": gap,
    }
    print(f"wrote {write_result(args.name, result)}", flush=True)


if __name__ == "__main__":
    main()
