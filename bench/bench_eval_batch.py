"""Greedy held-out eval time by batch size: episodes per batched model call, each call
generated whole.

A decode step has a cost per step (the weights read, per-operator overhead) and a cost
per row (its keys and values): more rows a step share the first. The same policy runs
the same tasks greedily at each batch size with `agentwheel eval --like RUN`; the first
batch size is the baseline. Episodes are compared token by token: the arithmetic of a
row changes with its batch (padding, kernel blocking), so bf16 near-ties in the greedy
argmax may flip.

    python bench/bench_eval_batch.py --like runs/study/shared \\
        --policy hf:runs/study/shared/checkpoints/sft/model --limit 48 --batch-sizes 16,48
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import write_result

from agentwheel.eval.evaluate import TRACES, read_summary, read_traces


def run_eval(like: str, policy: str, limit: int | None, batch: int, out: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "agentwheel",
        "eval",
        "--like",
        like,
        "--policy",
        policy,
        "--batch-size",
        str(batch),
        "--out",
        str(out),
    ]
    if limit is not None:
        command += ["--limit", str(limit)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summary = read_summary(out)
    return {
        "batch_size": batch,
        "tasks": summary["n_tasks"],
        "wall_s": round(wall, 1),
        "eval_s": round(summary["wall_seconds"], 1),
        "pass_1": round(summary["pass_hat_k"]["1"], 4),
        "mean_generated_tokens": summary["mean_generated_tokens"],
    }


def episodes(out: Path) -> dict[str, list[int] | None]:
    done = read_traces(out / TRACES).done
    return {t.task_id: t.tokens.ids if t.tokens else None for t in done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--like", required=True, help="run dir whose held-out eval to repeat")
    parser.add_argument("--policy", required=True)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-sizes", default="16,48")
    parser.add_argument("--name", default="eval_batch", help="result file bench/results/NAME.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch in sizes:
            out = Path(tmp) / f"b{batch}"
            runs.append(run_eval(args.like, args.policy, args.limit, batch, out))
            print(runs[-1], flush=True)
        base = episodes(Path(tmp) / f"b{sizes[0]}")
        for run in runs[1:]:
            other = episodes(Path(tmp) / f"b{run['batch_size']}")
            same = sum(base[k] == other.get(k) for k in base)
            run["episodes_identical_to_baseline"] = f"{same}/{len(base)}"
            run["speedup"] = round(runs[0]["eval_s"] / run["eval_s"], 2)
    result = {
        "like": args.like,
        "policy": args.policy,
        "baseline": f"batch {sizes[0]} (episodes per batched model call)",
        "runs": runs,
    }
    write_result(args.name, result)


if __name__ == "__main__":
    main()
