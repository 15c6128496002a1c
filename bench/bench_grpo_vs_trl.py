"""One GRPO update step: agentwheel's `GRPOTrainer` against TRL's `GRPOTrainer`.

Goal (from the issue): ours <= 1.0x TRL's step time and <= 0.6x its peak memory, for the
default model (SmolLM2-135M-Instruct) on 8 sequences x 512 tokens.

What is measured: the policy update only, on fixed completions that both sides share. The
completions are random token ids (prompt tokens masked out, completion tokens trained on)
with alternating rewards 1, 0, 1, 0, ... in one group, so every advantage is non-zero.
The behaviour ("old") log-probs are computed once by a separate process, under the same
dtype, and handed to both sides: neither side spends a forward pass on them.

- ours: `GRPOTrainer(model, GRPOConfig(...)).step(groups)`, timed around the call. It
  includes collation, forward + backward, gradient clipping and the AdamW step.
- TRL: `trainer.train()` with its completion generation monkeypatched to return the fixed
  batch (`_generate_and_score_completions`); a callback times `on_step_begin` ->
  `on_step_end`, which spans `training_step` (forward + backward), gradient clipping, the
  optimizer and scheduler steps. Loss: `dapo` (token-level), epsilon 0.2, epsilon_high
  0.28, beta 0.0, like ours (clip_low 0.2, clip_high 0.28, kl_coef 0).

Both load the same float32 weights with `load_default_model`; `--dtype bfloat16` means
bf16 autocast (ours `compute_dtype="bfloat16"`, TRL `bf16=True`), float32 master weights.
Step time is the median over `--steps` steps after one warm-up step.

Memory: each side runs in a fresh `spawn` process. Peak memory there is
`getrusage(RUSAGE_SELF).ru_maxrss` at the end minus the resident set size (VmRSS) right
after the model is loaded (all imports done before the load), i.e. the extra memory the
trainer needs on top of the weights: gradients, optimizer state, activations, logits.
`peak_rss_before_steps_mb` shows that the peak is not from loading.

    python bench/bench_grpo_vs_trl.py [--dtype bfloat16] [--steps 3] [--batch 8]
        [--prompt-len 128] [--completion-len 384] [--gradient-checkpointing]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import write_result

MODEL = "hf:default (SmolLM2-135M-Instruct, float32 weights)"
GOAL_TIME_RATIO = 1.0
GOAL_MEMORY_RATIO = 0.6
FIRST_ORDINARY_TOKEN = 100  # random ids stay clear of the special tokens at the start


@dataclass(frozen=True)
class Settings:
    dtype: str
    batch: int
    prompt_len: int
    completion_len: int
    gradient_checkpointing: bool
    steps: int
    threads: int
    lr: float = 1e-6
    seed: int = 0

    @property
    def rewards(self) -> list[float]:
        return [float(i % 2 == 0) for i in range(self.batch)]


# --- measurement helpers (run inside the child processes) ------------------------------


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def load_policy(settings: Settings) -> tuple[Any, int]:
    """The default model (float32 weights, train mode) and its pad id."""
    import torch

    from agentwheel.llm.default_model import load_default_model

    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    chat_model = load_default_model("float32", "cpu", settings.batch)
    return chat_model.model.train(), chat_model.pad_id


def side_report(
    step_seconds: list[float], rss_after_load: float, peak_before_steps: float, extra: dict
) -> dict[str, Any]:
    peak = peak_rss_mb()
    timed = step_seconds[1:]
    return {
        "warmup_step_s": round(step_seconds[0], 3),
        "step_s": [round(s, 3) for s in timed],
        "step_s_median": round(statistics.median(timed), 3),
        "step_s_min": round(min(timed), 3),
        "rss_after_model_load_mb": round(rss_after_load, 1),
        "peak_rss_before_steps_mb": round(peak_before_steps, 1),
        "peak_rss_mb": round(peak, 1),
        "peak_memory_mb": round(peak - rss_after_load, 1),
        **extra,
    }


# --- the shared batch -------------------------------------------------------------------


def make_fixed_batch(settings: Settings, data_path: str) -> None:
    """Random ids plus the model's own log-probs of the completion tokens, saved for both
    sides (runs in its own process so that neither side pays for this forward pass)."""
    import torch

    from agentwheel.settings.trainer import GRPOConfig
    from agentwheel.train.logprobs import token_logprobs
    from agentwheel.train.model import autocast

    model, pad_id = load_policy(settings)
    generator = torch.Generator().manual_seed(settings.seed)
    length = settings.prompt_len + settings.completion_len
    vocab = model.config.vocab_size
    ids = torch.randint(FIRST_ORDINARY_TOKEN, vocab, (settings.batch, length), generator=generator)
    target_mask = torch.zeros(settings.batch, length - 1, dtype=torch.bool)
    target_mask[:, settings.prompt_len - 1 :] = True  # targets = ids[:, 1:]
    model.eval()
    config = GRPOConfig(compute_dtype=settings.dtype)  # type: ignore[arg-type]
    with torch.no_grad(), autocast(model, config):
        logprobs = token_logprobs(
            model,
            ids[:, :-1],
            torch.ones_like(ids[:, :-1]),
            ids[:, 1:],
            target_mask=target_mask,
        ).logprobs
    old = logprobs[:, settings.prompt_len - 1 :].contiguous()
    torch.save({"ids": ids, "old_logprobs": old, "pad_id": pad_id}, data_path)


# --- ours ------------------------------------------------------------------------------


def build_groups(settings: Settings, data: dict) -> list[list[Any]]:
    """The fixed batch as one group of trajectories with token traces."""
    from agentwheel.envs.trajectory import RewardBreakdown, TokenTrace, Trajectory

    group = []
    for row, reward in enumerate(settings.rewards):
        ids = data["ids"][row].tolist()
        trace = TokenTrace()
        trace.add_context(ids[: settings.prompt_len])
        trace.add_generated(ids[settings.prompt_len :], data["old_logprobs"][row].tolist())
        passed = reward > 0
        group.append(
            Trajectory(
                task_id="bench",
                trial=row,
                domain="bench",
                branch_kind="happy",
                policy="hf:default",
                backend="mock",
                messages=[],
                tokens=trace,
                reward=RewardBreakdown(passed=passed, state_matches=passed, hack_action_ran=False),
                termination="user_ended",
            )
        )
    return [group]


def run_ours(settings: Settings, data_path: str) -> dict[str, Any]:
    import torch

    from agentwheel.settings.trainer import GRPOConfig
    from agentwheel.train.grpo import GRPOTrainer

    data = torch.load(data_path)
    model, pad_id = load_policy(settings)
    rss_after_load = current_rss_mb()
    groups = build_groups(settings, data)
    config = GRPOConfig(
        lr=settings.lr,
        clip_low=0.2,
        clip_high=0.28,
        kl_coef=0.0,
        compute_dtype=settings.dtype,  # type: ignore[arg-type]
        gradient_checkpointing=settings.gradient_checkpointing,
        seed=settings.seed,
    )
    trainer = GRPOTrainer(model, config, pad_id=pad_id)
    peak_before_steps = peak_rss_mb()
    step_seconds, metrics = [], []
    for _ in range(1 + settings.steps):
        start = time.perf_counter()
        metrics.append(trainer.step(groups))
        step_seconds.append(time.perf_counter() - start)
    first = metrics[0]
    return side_report(
        step_seconds,
        rss_after_load,
        peak_before_steps,
        {
            "config": {
                "micro_batch_tokens": config.micro_batch_tokens,
                "logprob_chunk_tokens": config.logprob_chunk_tokens,
                "optimizer": "torch.optim.AdamW (default implementation)",
            },
            "first_step": {
                "loss": first.loss,
                "grad_norm": first.grad_norm,
                "trained_tokens": first.trained_tokens,
                "ratio_mean": first.ratio_mean,
                "entropy": first.entropy,
            },
        },
    )


# --- TRL -------------------------------------------------------------------------------


def trl_fixed_inputs(settings: Settings, data: dict) -> dict[str, Any]:
    """What TRL's `_generate_and_score_completions` would return for the fixed batch."""
    import torch

    from agentwheel.train.grpo import group_advantages

    ids = data["ids"]
    (advantages,) = group_advantages([settings.rewards])
    prompt_ids = ids[:, : settings.prompt_len].contiguous()
    completion_ids = ids[:, settings.prompt_len :].contiguous()
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": completion_ids,
        "completion_mask": torch.ones_like(completion_ids),
        "advantages": torch.tensor(advantages, dtype=torch.float32),
        "num_items_in_batch": torch.tensor(completion_ids.numel()),
        "old_per_token_logps": data["old_logprobs"],
    }


def zero_reward(completions: list[Any], **kwargs: Any) -> list[float | None]:
    """TRL needs a reward function; it is never called (generation is patched out)."""
    return [0.0] * len(completions)


def run_trl(settings: Settings, data_path: str) -> dict[str, Any]:
    import torch
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback

    from agentwheel.llm.half_precision import runnable_dtype

    data = torch.load(data_path)
    model, _ = load_policy(settings)
    rss_after_load = current_rss_mb()

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.seconds.append(time.perf_counter() - self._start)

    total_steps = 1 + settings.steps
    # The same rule as ours: on a CPU without native bf16 both sides compute in float32.
    bf16 = runnable_dtype(settings.dtype, "cpu") == "bfloat16"
    with tempfile.TemporaryDirectory() as out_dir:
        args = trl.GRPOConfig(
            output_dir=out_dir,
            use_cpu=True,
            bf16=bf16,
            fp16=False,
            activation_checkpointing=settings.gradient_checkpointing,
            per_device_train_batch_size=settings.batch,
            gradient_accumulation_steps=1,
            num_generations=settings.batch,
            max_completion_length=settings.completion_len,
            max_steps=total_steps,
            learning_rate=settings.lr,
            lr_scheduler_type="constant",
            max_grad_norm=1.0,
            loss_type="dapo",
            epsilon=0.2,
            epsilon_high=0.28,
            beta=0.0,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=settings.seed,
        )
        prompts = Dataset.from_dict({"prompt": ["fixed"] * total_steps})
        timer = StepTimer()
        trainer = trl.GRPOTrainer(
            model=model,
            reward_funcs=zero_reward,
            args=args,
            train_dataset=prompts,
            callbacks=[timer],
        )
        fixed = trl_fixed_inputs(settings, data)

        def replay_fixed_batch(generation_batch: Any) -> dict[str, Any]:
            return dict(fixed)

        trainer._generate_and_score_completions = replay_fixed_batch  # type: ignore[method-assign,assignment]
        peak_before_steps = peak_rss_mb()
        trainer.train()
    first_log = next(entry for entry in trainer.state.log_history if "loss" in entry)
    return side_report(
        timer.seconds,
        rss_after_load,
        peak_before_steps,
        {
            "config": {
                "loss_type": args.loss_type,
                "epsilon": args.epsilon,
                "epsilon_high": args.epsilon_high,
                "beta": args.beta,
                "optimizer": str(args.optim),
                "bf16": args.bf16,
                "activation_checkpointing": args.activation_checkpointing,
            },
            "first_step": {
                "loss": first_log.get("loss"),
                "grad_norm": first_log.get("grad_norm"),
                "entropy": first_log.get("entropy"),
            },
        },
    )


# --- driver ----------------------------------------------------------------------------


def in_fresh_process(function: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def ratio(ours: float, theirs: float) -> float:
    return round(ours / theirs, 3) if theirs else float("nan")


def parse_settings() -> tuple[Settings, Path | None]:
    import torch

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="bfloat16")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after 1 warm-up")
    parser.add_argument("--batch", type=int, default=8, help="sequences (one group)")
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--completion-len", type=int, default=384)
    parser.add_argument(
        "--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=False
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out-dir", type=Path, default=None, help="default: bench/results")
    args = parser.parse_args()
    if args.steps < 1 or args.batch < 2:
        parser.error("need --steps >= 1 and --batch >= 2 (a group needs two rewards)")
    settings = Settings(
        dtype=args.dtype,
        batch=args.batch,
        prompt_len=args.prompt_len,
        completion_len=args.completion_len,
        gradient_checkpointing=args.gradient_checkpointing,
        steps=args.steps,
        threads=args.threads,
    )
    return settings, args.out_dir


def main() -> None:
    settings, out_dir = parse_settings()
    print(f"settings: {settings}")
    with tempfile.TemporaryDirectory() as tmp:
        data_path = str(Path(tmp) / "batch.pt")
        in_fresh_process(make_fixed_batch, settings, data_path)
        sides = {}
        for name, run in (("ours", run_ours), ("trl", run_trl)):
            load_before = os.getloadavg()[0]
            side = in_fresh_process(run, settings, data_path)
            side["load_average_1min_before_after"] = [load_before, os.getloadavg()[0]]
            sides[name] = side
            print(
                f"{name:>5}: {side['step_s_median']:7.2f} s/step (median of {side['step_s']}), "
                f"peak +{side['peak_memory_mb']:.0f} MB over the loaded model"
            )
    ratios = {
        "time_ours_over_trl": ratio(sides["ours"]["step_s_median"], sides["trl"]["step_s_median"]),
        "memory_ours_over_trl": ratio(
            sides["ours"]["peak_memory_mb"], sides["trl"]["peak_memory_mb"]
        ),
    }
    print(f"ratios ours/TRL: {ratios}")
    result = {
        "settings": {"model": MODEL, **asdict(settings)},
        "method": {
            "what": "one GRPO update step (no generation) on fixed, shared completions",
            "ours": "GRPOTrainer.step(groups) wall time; sampler log-probs given, no recompute",
            "trl": (
                "GRPOTrainer.train() with _generate_and_score_completions patched to return the "
                "fixed batch (incl. old_per_token_logps); callback times on_step_begin..on_step_end"
            ),
            "dtype": "float32 weights; bfloat16 = autocast (ours compute_dtype, TRL bf16=True)",
            "step_time": "median over `steps` steps after 1 warm-up step",
            "old_logprobs": (
                "computed once before training; from the second step on they are stale (the "
                "policy moved), so clip fractions rise, but the compute per step is unchanged; "
                "first_step loss and grad_norm are the like-for-like check of the two losses"
            ),
            "memory": (
                "fresh spawn process per side: ru_maxrss at the end minus VmRSS right after the "
                "model load (imports done before), in MiB"
            ),
        },
        "goal": {"time_ratio_max": GOAL_TIME_RATIO, "memory_ratio_max": GOAL_MEMORY_RATIO},
        "ours": sides["ours"],
        "trl": sides["trl"],
        "ratios": ratios,
        "meets_goal": {
            "time": ratios["time_ours_over_trl"] <= GOAL_TIME_RATIO,
            "memory": ratios["memory_ours_over_trl"] <= GOAL_MEMORY_RATIO,
        },
    }
    path = write_result("grpo_vs_trl", result, out_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
