"""The default model after SFT on synthesized search and analysis tasks, and one evolve
round against that checkpoint: does the flywheel make questions harder for it?

Steps, each an `agentwheel` command (printed as it runs; a rerun with the same --out
picks up where it stopped):

1. `synth search` and `synth analysis`: `--count` validated tasks of each (seed 11, not
   the fixtures' 7);
2. `train --config bench/industrial_sft.yaml`: SFT on their oracle episodes (LoRA rank 16
   as configs/study.yaml's sft section), no RL;
3. `eval` of the SFT checkpoint on `search-fixtures` and `analysis-fixtures`
   (bench/bench_industrial_model.py: n, pass^1, Wilson 95% interval, cost);
4. `evolve search` / `evolve analysis --parents all`: one harder, gated variant per
   fixture question the checkpoint was evaluated on;
5. `eval` of the checkpoint on the evolved tasks, set beside its pass rate on their
   parents (the same questions before evolving).

Writes bench/results/industrial_sft.json (or --result). Hours on the 2-core CPU with
hf:default; `--model tiny --quick` checks the pipeline in a few minutes:

    python bench/bench_industrial_sft.py                              # the measurement
    python bench/bench_industrial_sft.py --model tiny --quick --out /tmp/sft-dry --result /tmp/sft-dry.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_industrial_model import SETS, run_set, wilson
from machine import machine_facts

CONFIG = Path(__file__).resolve().parent / "industrial_sft.yaml"
KINDS = {"search-fixtures": "search", "analysis-fixtures": "analysis"}
# `--quick`: a tiny run that exercises every step (a pipeline check, not a measurement).
QUICK_TRAIN = [
    "sft.max_tasks=8",
    "sft.train.epochs=1",
    "eval.max_new_tokens=8",
    "runner.max_agent_turns=2",
]
QUICK_EVAL = ["--limit", "6", "--max-turns", "2", "--max-new-tokens", "8"]


def agentwheel(*args: str) -> None:
    print("$ agentwheel " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "agentwheel", *args], check=True)


def synthesize(out: Path, count: int) -> list[str]:
    dirs = []
    for kind in ("search", "analysis"):
        target = out / "data" / kind
        if not (target / "manifest.json").is_file():
            agentwheel("synth", kind, "--out", str(target), "--count", str(count), "--seed", "11")
        dirs.append(str(target))
    return dirs


def train(out: Path, model: str, data: list[str], quick: bool) -> Path:
    run = out / "train"
    checkpoint = run / "checkpoints" / "sft"
    if not (checkpoint / "COMPLETE").is_file():
        sets = [f"model.spec={model}", f"data.extra_train_tasks=[{', '.join(data)}]"]
        if quick:
            sets += [*QUICK_TRAIN, "model.generation.backend=shared"]
        resume = ["--resume"] if (run / "state.json").is_file() else []
        args = ["train", "--config", str(CONFIG), "--out", str(run), *resume]
        agentwheel(*args, *(x for s in sets for x in ("--set", s)))
    return checkpoint


def results_of(run: Path) -> dict[str, bool]:
    """Task id → passed, from an eval run's traces (its latest trial of each task)."""
    from agentwheel.eval.evaluate import TRACES, latest_results, read_traces

    return {t.task_id: t.passed for t in latest_results(read_traces(run / TRACES).done)}


def evolve_round(out: Path, policy: str, eval_runs: Path, extra: list[str]) -> dict:
    """Per kind: the evolved tasks' pass rate beside their parents' (same checkpoint)."""
    report = {}
    for tasks, kind in KINDS.items():
        evolved = out / "evolved" / kind
        parents_run = eval_runs / tasks
        if not (evolved / "tasks.jsonl").is_file():
            args = ["evolve", kind, "--tasks", tasks, "--run", str(parents_run)]
            agentwheel(*args, "--parents", "all", "--out", str(evolved))
        variants = [json.loads(x) for x in (evolved / "tasks.jsonl").read_text().splitlines() if x]
        if not variants:
            report[kind] = {"evolved": 0}
            continue
        run = out / "eval-evolved" / kind
        resume = ["--resume"] if (run / "traces.jsonl").is_file() else []
        args = ["eval", "--tasks", str(evolved), "--policy", policy, "--out", str(run)]
        agentwheel(*args, *resume, *extra)
        child = results_of(run)
        parent = results_of(parents_run)
        pairs = [
            (parent[v["lineage"]["parent_id"]], child[v["id"]])
            for v in variants
            if v["id"] in child
        ]
        n = len(pairs)
        before, after = sum(p for p, _ in pairs), sum(c for _, c in pairs)
        report[kind] = {
            "evolved": len(variants),
            "n_pairs": n,
            "parents_pass": before,
            "parents_pass_rate": round(before / n, 4) if n else None,
            "parents_wilson_ci95": wilson(before, n),
            "evolved_pass": after,
            "evolved_pass_rate": round(after / n, 4) if n else None,
            "evolved_wilson_ci95": wilson(after, n),
            "harder_for_passed_parents": sum(p and not c for p, c in pairs),
            "easier_for_failed_parents": sum(c and not p for p, c in pairs),
            "by_operator": _by_operator(variants, child),
        }
    return report


def _by_operator(variants: list[dict], child: dict[str, bool]) -> dict[str, list[int]]:
    """Operator → [passed, evaluated]."""
    counts: dict[str, list[int]] = {}
    for v in variants:
        if v["id"] in child:
            entry = counts.setdefault(v["lineage"]["operator"], [0, 0])
            entry[0] += child[v["id"]]
            entry[1] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="hf:default", help="The model spec SFT starts from.")
    parser.add_argument("--count", type=int, default=150, help="Synthesized tasks per kind.")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-industrial-sft"))
    parser.add_argument("--result", type=Path, default=Path("bench/results/industrial_sft.json"))
    parser.add_argument("--quick", action="store_true", help="A pipeline check (tiny sizes).")
    args = parser.parse_args()
    extra = QUICK_EVAL if args.quick else ["--max-turns", "8"]
    data = synthesize(args.out, args.count)
    checkpoint = train(args.out, args.model, data, args.quick)
    policy = f"hf:{checkpoint / 'model'}"  # the servable weights (LoRA merged)
    eval_runs = args.out / "eval"
    fixtures = {tasks: run_set(tasks, policy, eval_runs, extra) for tasks in SETS}
    evolve = evolve_round(args.out, policy, eval_runs, extra)
    import torch

    record = {
        "benchmark": args.result.stem,
        "machine": {**machine_facts(), "torch_threads": torch.get_num_threads()},
        "model": args.model,
        "sft": {
            "config": "bench/industrial_sft.yaml",
            "tasks_per_kind": args.count,
            "quick": args.quick,
        },
        "fixtures": fixtures,
        "evolve_round": evolve,
    }
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(json.dumps(record, indent=2) + "\n")
    for tasks, r in fixtures.items():
        print(f"{tasks}: {r['passes']}/{r['n_tasks']} = {r['pass_hat_1']:.3f} {r['wilson_ci95']}")
    for kind, r in evolve.items():
        if r.get("n_pairs"):
            print(
                f"evolved {kind}: {r['evolved_pass']}/{r['n_pairs']} vs parents "
                f"{r['parents_pass']}/{r['n_pairs']}"
            )
    print(f"→ {args.result}")


if __name__ == "__main__":
    main()
