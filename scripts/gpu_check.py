"""Checks the vLLM back-end on a GPU machine (not run in CI: needs CUDA and the vllm extra).

    python scripts/gpu_check.py /path/to/hf/model [--requests 64] [--tensor NAME]

Greedy generation for a batch of chat requests (tokens/s); one tensor negated through
`load_weights` (greedy output must change), the whole checkpoint loaded back (output must
match the first run); vLLM's sampled log-probs at temperature 0.7 against transformers'
`log_softmax(logits / 0.7)` on the same ids (what the trainer recomputes). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from agentwheel.core.messages import ChatRequest, Message, SamplingParams
from agentwheel.llm.vllm_backend import load_vllm_model

QUESTIONS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "List three prime numbers.",
    "How do I cancel an order that has not shipped yet?",
]


def checkpoint(path: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        tensors.update(load_file(file, device="cuda"))
    return tensors


def recomputed_logprob_gap(path: Path, model, batch: list[ChatRequest]) -> float:
    """Largest |vLLM log-prob - transformers log_softmax(logits / T)| over sampled ids."""
    from transformers import AutoModelForCausalLM

    temperature = 0.7
    params = SamplingParams(max_new_tokens=32, temperature=temperature, seed=0)
    completions = model.chat(batch, params)
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map="cuda")
    gap = 0.0
    for request, completion in zip(batch, completions, strict=True):
        prompt = model.renderer.initial_ids(request.messages, request.tools)
        ids = completion.completion_ids or []
        with torch.no_grad():
            logits = hf(torch.tensor([prompt + ids], device="cuda")).logits[0].float()
        steps = torch.log_softmax(logits[len(prompt) - 1 : -1] / temperature, dim=-1)
        ours = steps.gather(1, torch.tensor(ids, device="cuda")[:, None]).squeeze(1)
        gap = max(gap, (ours.cpu() - torch.tensor(completion.logprobs)).abs().max().item())
    del hf
    torch.cuda.empty_cache()
    return gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--tensor", default=None, help="tensor to negate (default: layer 0 MLP)")
    args = parser.parse_args()
    import vllm

    start = time.perf_counter()
    model = load_vllm_model(args.model_dir, gpu_memory_utilization=0.5)
    load_s = time.perf_counter() - start
    batch = [
        ChatRequest(messages=[Message(role="user", content=f"{QUESTIONS[i % 4]} (#{i})")])
        for i in range(args.requests)
    ]
    greedy = SamplingParams(max_new_tokens=args.max_new_tokens)

    model.chat(batch[:2], greedy)  # warm-up (CUDA graphs, allocator)
    start = time.perf_counter()
    before = model.chat(batch, greedy)
    generate_s = time.perf_counter() - start
    new_tokens = sum(c.completion_tokens for c in before)

    weights = checkpoint(args.model_dir)
    name = args.tensor or next(n for n in weights if n.endswith("layers.0.mlp.down_proj.weight"))
    model.load_weights([(name, -weights[name])])
    perturbed = model.chat(batch, greedy)
    start = time.perf_counter()
    model.load_weights(weights.items())  # the whole checkpoint, as the trainer would
    torch.cuda.synchronize()
    restore_s = time.perf_counter() - start
    after = model.chat(batch, greedy)

    def ids(completions):
        return [c.completion_ids for c in completions]

    report = {
        "model": str(args.model_dir),
        "vllm": vllm.__version__,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(),
        "load_s": round(load_s, 1),
        "requests": len(batch),
        "new_tokens": new_tokens,
        "tokens_per_s": round(new_tokens / generate_s, 1),
        "errors": sum(c.failed for c in before),
        "perturbed_tensor": name,
        "greedy_changed_after_perturbation": ids(perturbed) != ids(before),
        "requests_changed": sum(p != b for p, b in zip(ids(perturbed), ids(before), strict=True)),
        "greedy_restored": ids(after) == ids(before),
        "load_weights_full_checkpoint_s": round(restore_s, 3),
        "logprobs_all_finite_nonpositive": all(
            math.isfinite(lp) and lp <= 0 for c in before for lp in c.logprobs or []
        ),
        "max_logprob_gap_vs_transformers_t0.7": round(
            recomputed_logprob_gap(args.model_dir, model, batch[:8]), 4
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
