"""Serving overhead: requests/s and tokens/s through `agentwheel serve` vs the same model
called in-process, at several concurrencies.

In-process at concurrency c is `model.chat` on batches of c requests, one after another:
what a program holding the model would do. Over HTTP, c client threads (the official
`openai` client) each send their share of the same requests one at a time to an
`OpenAIServer` on loopback, whose batcher merges what arrives together into one
`model.chat` call. Both arms run the same prompts, greedy, with the same token limit, on
the same model object in this process; the model's key/value cache is cleared before
every timed run so neither arm reuses the other's prompts. The ratio is HTTP over
in-process (1.0: serving costs nothing).

    python bench/bench_serve.py [--spec hf:default | --spec tiny] [--concurrency 1 8 32]
        [--requests-per-client 2] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import openai
import torch
from machine import write_result

from agentwheel.core.messages import ChatRequest, Message, SamplingParams
from agentwheel.core.task import ToolSpec
from agentwheel.llm.default_model import load_hf_spec
from agentwheel.llm.hf import HFChatModel
from agentwheel.llm.server.http import OpenAIServer
from agentwheel.llm.server.service import ChatService

NAME = "bench"
SYSTEM = "You are the support assistant of a small online shop. Be brief."
TOOL = ToolSpec(
    name="get_order",
    description="Look up an order by id.",
    parameters={
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
    },
    kind="query",
)
QUESTIONS = [
    "Where is my order O-{i}?",
    "Can I still cancel order O-{i}?",
    "Order O-{i} arrived damaged. What now?",
    "Please change the address of order O-{i}.",
]


def load_model(spec: str, dtype: str, max_batch_size: int) -> HFChatModel:
    if spec == "tiny":
        from agentwheel.settings.model import ModelSettings
        from agentwheel.train.model_factory import build_tiny_model

        return build_tiny_model(ModelSettings(spec="tiny", max_batch_size=max_batch_size), 0)
    return load_hf_spec(spec, dtype=dtype, max_batch_size=max_batch_size)


def conversations(n: int) -> list[list[Message]]:
    return [
        [
            Message(role="system", content=SYSTEM),
            Message(role="user", content=QUESTIONS[i % len(QUESTIONS)].format(i=100 + i)),
        ]
        for i in range(n)
    ]


def run_in_process(
    model: HFChatModel, convs: list[list[Message]], concurrency: int, max_tokens: int
) -> dict[str, Any]:
    params = SamplingParams(max_new_tokens=max_tokens, temperature=0.0)
    model.release_kv_cache()
    tokens = 0
    start = time.perf_counter()
    for first in range(0, len(convs), concurrency):
        batch = [ChatRequest(messages=c, tools=[TOOL]) for c in convs[first : first + concurrency]]
        tokens += sum(c.completion_tokens for c in model.chat(batch, params))
    return _rates(len(convs), tokens, time.perf_counter() - start)


def run_over_http(
    server: OpenAIServer,
    model: HFChatModel,
    convs: list[list[Message]],
    concurrency: int,
    max_tokens: int,
) -> dict[str, Any]:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=3600)
    tools = [TOOL.openai_schema()]
    lock = threading.Lock()
    tokens = 0

    def one_client(k: int) -> None:
        nonlocal tokens
        for conv in convs[k::concurrency]:
            reply = client.chat.completions.create(
                model=NAME,
                messages=[m.openai_dict() for m in conv],
                tools=tools,
                temperature=0.0,
                max_tokens=max_tokens,
            )
            assert reply.usage is not None
            with lock:
                tokens += reply.usage.completion_tokens

    model.release_kv_cache()
    calls_before = server.service.batcher.stats.calls
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one_client, range(concurrency)))
    rates = _rates(len(convs), tokens, time.perf_counter() - start)
    rates["model_calls"] = server.service.batcher.stats.calls - calls_before
    client.close()
    return rates


def _rates(requests: int, tokens: int, seconds: float) -> dict[str, Any]:
    return {
        "requests": requests,
        "completion_tokens": tokens,
        "seconds": round(seconds, 3),
        "requests_per_s": round(requests / seconds, 3),
        "tokens_per_s": round(tokens / seconds, 2),
    }


def save(args: argparse.Namespace, rows: list[dict[str, Any]]) -> Path:
    """Written after every concurrency, so an interrupted run keeps what it measured."""
    return write_result(
        args.name,
        {
            "spec": args.spec,
            "dtype": args.dtype,
            "torch_threads": args.threads,
            "max_tokens": args.max_tokens,
            "requests_per_client": args.requests_per_client,
            "prompt": "system + one tool + a short user question, greedy",
            "note": args.note,
            "goal": "ratio >= 0.9 at the highest concurrency",
            "goal_met": rows[-1]["ratio_requests_per_s"] >= 0.9,
            "rows": rows,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="hf:default", help="hf:default | hf:<path> | tiny")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--min-requests", type=int, default=8, help="at least this many per run")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--name", default="serve", help="result file: bench/results/<name>.json")
    parser.add_argument("--note", default="", help="free text saved with the result (e.g. load)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    biggest = max(args.concurrency)
    model = load_model(args.spec, args.dtype, max_batch_size=biggest)
    rows = []
    with OpenAIServer(ChatService(model, NAME, max_batch_size=biggest), port=0).start() as server:
        warm = conversations(2)
        run_in_process(model, warm, 2, args.max_tokens)
        run_over_http(server, model, warm, 2, args.max_tokens)
        for concurrency in args.concurrency:
            n = max(args.min_requests, concurrency * args.requests_per_client)
            convs = conversations(n)
            direct = run_in_process(model, convs, concurrency, args.max_tokens)
            http = run_over_http(server, model, convs, concurrency, args.max_tokens)
            row = {
                "concurrency": concurrency,
                "in_process": direct,
                "http": http,
                "ratio_requests_per_s": round(http["requests_per_s"] / direct["requests_per_s"], 3),
                "ratio_tokens_per_s": round(http["tokens_per_s"] / direct["tokens_per_s"], 3),
            }
            rows.append(row)
            print(
                f"c={concurrency:>3}  in-process {direct['requests_per_s']:8.3f} req/s "
                f"{direct['tokens_per_s']:9.2f} tok/s | http {http['requests_per_s']:8.3f} req/s "
                f"{http['tokens_per_s']:9.2f} tok/s ({http['model_calls']} model calls) | "
                f"ratio {row['ratio_requests_per_s']:.3f}",
                flush=True,
            )
            print(f"wrote {save(args, rows)}", flush=True)


if __name__ == "__main__":
    main()
