"""A model's pass rate on the bundled industrial fixtures, with n and a 95% interval.

Runs `agentwheel eval` on `search-fixtures` and `analysis-fixtures` with one policy and
writes one JSON beside the eval runs' own summaries: per set, n, passes, pass^1, the
Wilson 95% score interval (which, unlike the eval summary's bootstrap over tasks, is not
[0, 0] when nothing passed), the cost block and the command; the machine (CPU model,
numeric flags such as avx512_bf16 / amx_bf16, cores, torch threads) is noted.

    python bench/bench_industrial_model.py --policy hf:default --out bench/results/industrial_default_model.json
    python bench/bench_industrial_model.py --policy hf:runs/x/checkpoints/sft --runs runs/bench-sft
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_facts

SETS = ("search-fixtures", "analysis-fixtures")
Z95 = 1.959964


def wilson(passes: int, n: int) -> list[float]:
    """The Wilson score interval of passes/n at 95%."""
    if n == 0:
        return [0.0, 1.0]
    p = passes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def run_set(tasks: str, policy: str, runs: Path, extra: list[str]) -> dict:
    out = runs / tasks
    command = [sys.executable, "-m", "agentwheel", "eval", "--tasks", tasks, "--policy", policy]
    command += ["--out", str(out), *extra]
    if (out / "summary.json").is_file() or (out / "traces.jsonl").is_file():
        command.append("--resume")
    start = time.perf_counter()
    subprocess.run(command, check=True)
    summary = json.loads((out / "summary.json").read_text())
    n = summary["n_tasks"]
    passes = round(summary["pass_hat_k"]["1"] * n)
    return {
        "command": " ".join(["agentwheel", *command[3:]]),
        "n_tasks": n,
        "passes": passes,
        "pass_hat_1": summary["pass_hat_k"]["1"],
        "wilson_ci95": wilson(passes, n),
        "cost": summary["cost"],
        "terminations": summary.get("terminations"),
        "invalid_tool_calls": summary.get("invalid_tool_calls"),
        "wall_s": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", default="hf:default")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench-industrial-model"))
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results/industrial_default_model.json")
    )
    parser.add_argument("--note", default="")
    parser.add_argument("eval_args", nargs="*", help="Passed to agentwheel eval (after --).")
    args = parser.parse_args()
    import torch

    results = {tasks: run_set(tasks, args.policy, args.runs, args.eval_args) for tasks in SETS}
    machine = {**machine_facts(), "torch_threads": torch.get_num_threads()}
    record = {"benchmark": args.out.stem, "machine": machine, "policy": args.policy}
    record |= {"note": args.note, "runs": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for tasks, r in results.items():
        low, high = r["wilson_ci95"]
        print(
            f"{tasks}: {r['passes']}/{r['n_tasks']} = {r['pass_hat_1']:.3f} [{low:.3f}, {high:.3f}]"
        )
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
