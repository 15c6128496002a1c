"""Industrial environments: sandbox overhead per call, search and SQL latency.

- Sandbox: `run_python` of a trivial program in the sandbox (bubblewrap namespaces,
  rlimits, scratch dir, leftover check) against the baseline measured in the same run:
  the same interpreter started as a plain subprocess. Overhead = the difference of the
  medians. Goal: <= 50 ms per call.
- Search: index build time and `search(k=5)` / `open` latency at 10,000 documents (the
  generated knowledge base), over queries of project names, person names and word pairs.
- SQL: `run_sql` latency of the analysis fixtures' gold queries (cache off).

    python bench/bench_industrial.py [--calls 40] [--queries 500]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import write_result

from agentwheel.core.dataset import load_tasks
from agentwheel.envs.analysis import query_rows
from agentwheel.envs.knowledge_base import generate_knowledge_base
from agentwheel.envs.sandbox import SandboxLimits, bwrap_path, run_python, sandbox_python
from agentwheel.envs.search_index import Document, SearchIndex
from agentwheel.envs.tables import load_tables

PROGRAM = "print(sum(range(1000)))"


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 2),
        "n": len(ordered),
    }


def _timed(call) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def sandbox_overhead(calls: int, data: Path) -> dict:
    python = sandbox_python()
    plain = [
        _timed(
            lambda: subprocess.run(
                [python, "-I", "-S", "-c", PROGRAM], capture_output=True, check=True
            )
        )
        for _ in range(calls)
    ]
    limits = SandboxLimits()
    results = []

    def sandboxed() -> None:
        results.append(run_python(PROGRAM, data, limits))

    boxed = [_timed(sandboxed) for _ in range(calls)]
    assert all(r.error is None and r.stdout.strip() == "499500" for r in results), results[0]
    plain_ms, boxed_ms = _ms(plain), _ms(boxed)
    overhead = round(boxed_ms["median_ms"] - plain_ms["median_ms"], 2)
    print(
        f"sandbox: {boxed_ms['median_ms']} ms median vs plain subprocess {plain_ms['median_ms']} ms"
        f" -> overhead {overhead} ms (goal <= 50)"
    )
    return {
        "bwrap": bwrap_path(),
        "interpreter": python,
        "program": PROGRAM,
        "baseline_plain_subprocess": plain_ms,
        "sandboxed": boxed_ms,
        "overhead_median_ms": overhead,
        "goal_overhead_ms": 50,
    }


def search_latency(queries: int) -> dict:
    start = time.perf_counter()
    kb = generate_knowledge_base(seed=0, docs=10_000)
    generated = time.perf_counter() - start
    index = SearchIndex([Document.model_validate(d) for d in kb.documents])
    built = time.perf_counter() - start - generated
    rng = random.Random(0)
    names = [p.name for p in kb.projects.values()] + [e.name for e in kb.employees.values()]
    words = " ".join(d["text"] for d in kb.documents[:200]).split()
    texts = [
        rng.choice(names) if i % 2 else f"{rng.choice(words)} {rng.choice(words)}"
        for i in range(queries)
    ]
    search = [_timed(lambda q=q: index.search(q, 5)) for q in texts]
    ids = [rng.choice(kb.documents)["doc_id"] for _ in range(queries)]
    opened = [_timed(lambda d=d: index.get(d)) for d in ids]
    found = sum(
        p.id in {h.doc_id for h in index.search(p.name, 5)}
        for p in list(kb.projects.values())[:300]
    )
    result = {
        "documents": index.size,
        "generate_s": round(generated, 3),
        "index_build_s": round(built, 3),
        "search_k5": _ms(search),
        "open": _ms(opened),
        "project_page_in_top5": round(found / 300, 3),
    }
    print(
        f"search at {index.size} docs: build {built:.2f} s, search {result['search_k5']}, open {result['open']}"
    )
    return result


def sql_latency() -> dict:
    tables = load_tables("shop")
    queries = [t.analysis.gold_sql for t in load_tasks("analysis-fixtures").tasks if t.analysis]
    cursor = tables.connection.cursor()
    times = [_timed(lambda q=q: query_rows(cursor, q)) for q in queries for _ in range(5)]
    result = {"queries": len(queries), "run_sql": _ms(times)}
    print(f"run_sql on the shop tables: {result['run_sql']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    # This machine is shared: the load says how much of a latency is waiting for a core.
    result: dict = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    result |= {"search": search_latency(args.queries), "sql": sql_latency()}
    if bwrap_path() is None:
        print("bubblewrap is not installed: the sandbox is not measured")
        result["sandbox"] = {"skipped": "bwrap not installed"}
    else:
        result["sandbox"] = sandbox_overhead(args.calls, load_tables("shop").data_dir)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path = write_result("industrial", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
