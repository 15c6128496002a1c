"""LLM expander throughput against the loopback OpenAI-compatible server at a fixed latency.

A scripted teacher (the one the tests use) answers every stage correctly after
`--latency` seconds, so the run's speed is set by how well the expander keeps
`--concurrency` requests in flight. Ideal throughput is concurrency / latency requests per
second; goal: the expander reaches >= 80% of it. The baseline, measured in the same run,
is the bare client sending the very requests the expander sent (same prompts, same
answers) as one `OpenAIChatModel.chat` batch: the ceiling for any orchestration.

The server runs in a child process by default, as a real teacher would (its CPU is not
ours); `--server thread` keeps it in this process.

    python bench/bench_expander.py [--workflows 64] [--latency 0.1] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# The repo root (for tests.llm.openai_server, which is not packaged) and bench/ (machine).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import write_result

from agentwheel.core.messages import ChatRequest, Completion, SamplingParams
from agentwheel.flywheels.agentic.llm_expander import LLMExpanderConfig, expand_with_llm
from agentwheel.flywheels.agentic.workflow import Workflow
from agentwheel.flywheels.agentic.workflow_loader import load_workflows
from agentwheel.llm.openai_compat import OpenAIChatModel
from tests.flywheels.test_llm_expander import BRANCHES, FakeTeacher
from tests.llm.openai_server import TEST_MODEL, OpenAITestServer

GOAL = 0.8


def _serve(latency_s: float, url_out: Any, stop: Any) -> None:
    with OpenAITestServer(FakeTeacher(), latency_s=latency_s) as server:
        url_out.send(server.url)
        stop.wait()


class ServerProcess:
    """The test server, playing the scripted teacher, in a child process."""

    def __init__(self, latency_s: float):
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        self._stop = context.Event()
        self._process = context.Process(
            target=_serve, args=(latency_s, send, self._stop), daemon=True
        )
        self._process.start()
        self.url: str = receive.recv()

    def close(self) -> None:
        self._stop.set()
        self._process.join(timeout=10)


def start_server(kind: str, latency_s: float) -> tuple[str, Callable[[], None]]:
    """The scripted teacher's server (`process` or `thread`): its URL and how to stop it."""
    if kind == "process":
        process = ServerProcess(latency_s)
        return process.url, process.close
    server = OpenAITestServer(FakeTeacher(), latency_s=latency_s).start()
    return server.url, server.stop


def copies(workflows: list[Workflow], n: int) -> list[Workflow]:
    """`n` workflows with distinct ids, cycling through the bundled ones."""
    return [
        workflows[i % len(workflows)].model_copy(
            update={"id": f"{workflows[i % len(workflows)].id}_{i}"}
        )
        for i in range(n)
    ]


class RecordingModel:
    """A `ChatModel` that passes batches on to `inner` and keeps every request it sent."""

    def __init__(self, inner: OpenAIChatModel):
        self.inner = inner
        self.name = inner.name
        self.renderer = None
        self.sent: list[ChatRequest] = []

    def chat(self, requests: Sequence[ChatRequest], params: SamplingParams) -> list[Completion]:
        self.sent.extend(requests)
        return self.inner.chat(requests, params)


def client_baseline(
    url: str, requests: list[ChatRequest], concurrency: int, params: SamplingParams
) -> dict[str, float]:
    """The bare client sending the expander's own requests as one batch: the ceiling an
    orchestrator could reach with these payloads and answers."""
    model = OpenAIChatModel(TEST_MODEL, url, concurrency=concurrency, timeout_s=30)
    start, cpu = time.perf_counter(), time.process_time()
    completions = model.chat(requests, params)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert not any(c.failed for c in completions)
    return {
        "requests_per_s": len(requests) / elapsed,
        "cpu_ms_per_request": 1000 * cpu / len(requests),
    }


def expander_run(
    url: str, workflows: list[Workflow], concurrency: int, batch_size: int
) -> tuple[dict[str, Any], list[ChatRequest]]:
    model = RecordingModel(OpenAIChatModel(TEST_MODEL, url, concurrency=concurrency, timeout_s=30))
    config = LLMExpanderConfig(batch_size=batch_size)
    with tempfile.TemporaryDirectory(prefix="bench-expander-") as out:
        start, cpu = time.perf_counter(), time.process_time()
        manifest = expand_with_llm(workflows, model, out, config)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    expected = len(workflows) * len(BRANCHES)
    assert manifest.tasks_kept == expected, manifest.rejections_by_reason
    return {
        "seconds": elapsed,
        "requests": manifest.requests,
        "tasks": manifest.tasks_kept,
        "waves": manifest.waves,
        "requests_per_s": manifest.requests / elapsed,
        "tasks_per_s": manifest.tasks_kept / elapsed,
        "cpu_ms_per_request": 1000 * cpu / manifest.requests,
    }, model.sent


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (a whole run, so its numbers agree)."""
    ranked = sorted(runs, key=lambda r: r["requests_per_s"])
    return ranked[len(ranked) // 2]


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=256, help="requests per wave")
    parser.add_argument("--server", choices=["process", "thread"], default="process")
    parser.add_argument("--repeats", type=int, default=3, help="runs; the median is kept")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    bundled, _ = load_workflows()
    workflows = copies(bundled, args.workflows)
    ideal = args.concurrency / args.latency

    load_before = load_average()
    url, stop = start_server(args.server, args.latency)
    params = LLMExpanderConfig().sampling_params()
    runs, baselines = [], []
    try:
        warm_up = workflows[: max(1, args.concurrency // 4)]
        expander_run(url, warm_up, args.concurrency, args.batch_size)
        for _ in range(args.repeats):
            # Interleaved, so that both see the same machine load.
            run, sent = expander_run(url, workflows, args.concurrency, args.batch_size)
            runs.append(run)
            baselines.append(client_baseline(url, sent, args.concurrency, params))
    finally:
        stop()
    run = median_run(runs)
    baseline_run = median_run(baselines)
    baseline = baseline_run["requests_per_s"]

    ratio = run["requests_per_s"] / ideal
    rows = [
        ("ideal (concurrency / latency)", ideal, 1.0, None),
        ("bare client, same requests (baseline)", baseline, baseline / ideal, baseline_run),
        ("LLM expander, 3 stages + gate", run["requests_per_s"], ratio, run),
    ]
    print(
        f"\n{args.workflows} workflows x {len(BRANCHES)} branches = {run['tasks']} tasks, "
        f"{run['requests']} teacher requests in {run['waves']} waves; latency "
        f"{args.latency * 1000:g} ms, concurrency {args.concurrency}, batch {args.batch_size}, "
        f"server: {args.server}; median of {args.repeats}; load average {load_before}\n"
    )
    print(f"{'':36} {'requests/s':>10} {'of ideal':>9} {'CPU ms/req':>11}")
    for name, rate, share, detail in rows:
        cpu = f"{detail['cpu_ms_per_request']:11.2f}" if detail else f"{'':11}"
        print(f"{name:36} {rate:10.1f} {share:9.1%} {cpu}")
    print(f"{'LLM expander, tasks/s':36} {run['tasks_per_s']:10.1f}")
    print(f"{'LLM expander / bare client':36} {'':10} {ratio / (baseline / ideal):9.1%}")
    verdict = "meets" if ratio >= GOAL else "MISSES"
    print(f"\n{verdict} the goal of {GOAL:.0%} of ideal ({ratio:.1%})")

    def rounded(values: dict[str, Any]) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}

    result = {
        "workflows": args.workflows,
        "branches_per_workflow": len(BRANCHES),
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "batch_size": args.batch_size,
        "server": args.server,
        "repeats": args.repeats,
        "load_average_before": load_before,
        "ideal_requests_per_s": round(ideal, 1),
        "baseline_client": rounded(baseline_run),
        "expander": rounded(run),
        "expander_runs_requests_per_s": [round(r["requests_per_s"], 1) for r in runs],
        "baseline_runs_requests_per_s": [round(b["requests_per_s"], 1) for b in baselines],
        "ratio_of_ideal": round(ratio, 4),
        "ratio_of_baseline": round(run["requests_per_s"] / baseline, 4),
        "goal_ratio_of_ideal": GOAL,
        "meets_goal": ratio >= GOAL,
    }
    if not args.no_write:
        name = "expander_throughput"
        if args.latency != 0.1:
            name += f"_{args.latency * 1000:g}ms"
        print(f"wrote {write_result(name, result)}")


if __name__ == "__main__":
    main()
