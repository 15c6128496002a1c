"""agentwheel episodes inside verl's agent loop on a local Ray cluster, against our runner.

The policy is the `tiny` random-weight model (SmolLM2's tokenizer), served to each Ray
worker by a stand-in for verl's server manager (`ChatModelTokenServer`); verl's own
`AgentLoopWorker` runs our `agentwheel_agent` loop on the bundled fixture tasks. The
baseline, in the same run, is our `EpisodeRunner` with the same model, greedy decoding and
limits, in this process. Checks that every episode's reward, reward components and ids
equal the runner's, and reports episodes/s of both (Ray start-up timed apart).

    .venv-verl/bin/python bench/bench_verl_loop.py [--episodes 42] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import write_result

from agentwheel.core.dataset import load_tasks
from agentwheel.core.messages import SamplingParams
from agentwheel.envs.agent import ModelPolicy
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.user import ScriptedUser
from agentwheel.export.datasets import export_verl
from agentwheel.integrations.verl.episode import reward_components
from agentwheel.integrations.verl.token_server import ChatModelTokenServer
from agentwheel.llm.hf import HFChatModel
from agentwheel.settings.runner import RunnerConfig

PROMPT_LENGTH = 1024
RESPONSE_LENGTH = 1024
MAX_NEW_TOKENS = 32
MAX_AGENT_TURNS = 4


def tiny_model(model_dir: Path) -> HFChatModel:
    """The schedule's `tiny` model, saved where verl's workers read their tokenizer."""
    from agentwheel.settings.model import ModelSettings
    from agentwheel.train.model_factory import build_tiny_model

    built = build_tiny_model(ModelSettings(spec="tiny"), seed=0)
    built.tokenizer.save_pretrained(model_dir)
    built.model.save_pretrained(model_dir)
    # kv_reuse off on both sides: ids then equal a fresh read exactly, not up to rounding.
    return HFChatModel(built.model, built.tokenizer, name="tiny", kv_reuse=False)


def loop_config(path: Path) -> Path:
    from omegaconf import OmegaConf

    from agentwheel.integrations.verl.verl_config import LOOP_CONFIG

    entries = OmegaConf.load(LOOP_CONFIG)
    entries[0].max_new_tokens = MAX_NEW_TOKENS
    entries[0].max_agent_turns = MAX_AGENT_TURNS
    OmegaConf.save(entries, path)
    return path


def run_ours(model: HFChatModel, tasks) -> tuple[list, float]:
    config = RunnerConfig(
        max_agent_turns=MAX_AGENT_TURNS,
        max_episode_tokens=PROMPT_LENGTH + RESPONSE_LENGTH,
        batch_size=1,
    )
    policy = ModelPolicy(model, SamplingParams(max_new_tokens=MAX_NEW_TOKENS, temperature=0.0))
    start = time.perf_counter()
    trajectories = EpisodeRunner(policy, ScriptedUser(), config).run(EpisodeSpec(t) for t in tasks)
    return sorted(trajectories, key=lambda t: [x.id for x in tasks].index(t.task_id)), (
        time.perf_counter() - start
    )


def start_ray(workers: int, attempts: int = 3) -> None:
    """A local Ray cluster, small and polite: a learning study shares this machine (the
    driver runs niced; Ray's processes inherit it). Ray gives its raylet a fixed 30 s to
    register, which a loaded 2-core machine can miss; so a few attempts."""
    import ray

    for attempt in range(1, attempts + 1):
        try:
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={
                    "env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
                },
            )
            return
        except Exception as exc:  # Ray raises a bare Exception on a start-up timeout
            ray.shutdown()
            if attempt == attempts:
                raise
            print(f"Ray did not start ({exc}); retrying")


def run_on_ray(model: HFChatModel, model_dir: Path, parquet: Path, workers: int, tmp: Path):
    import ray
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.protocol import DataProto

    from agentwheel.integrations.verl.verl_config import (
        compose_verl_config,
        dataset_batch,
        load_rlhf_dataset,
    )

    config = compose_verl_config(
        model_dir,
        PROMPT_LENGTH,
        RESPONSE_LENGTH,
        agent_loop_config=loop_config(tmp / "agent_loops.yaml"),
        overrides=["actor_rollout_ref.rollout.temperature=0"],
    )
    start = time.perf_counter()
    start_ray(workers)
    actor = ray.remote(num_cpus=1)(AgentLoopWorker)
    handles = [actor.remote(config, ChatModelTokenServer(model)) for _ in range(workers)]
    dataset = load_rlhf_dataset(parquet, model.tokenizer, config)
    chunks = [list(range(len(dataset)))[w::workers] for w in range(workers)]
    ray.get([h.__ray_ready__.remote() for h in handles])
    startup_s = time.perf_counter() - start
    start = time.perf_counter()
    outputs = ray.get(
        [
            h.generate_sequences.remote(dataset_batch(dataset, c))
            for h, c in zip(handles, chunks, strict=True)
        ]
    )
    elapsed = time.perf_counter() - start
    ray.shutdown()
    order = [i for c in chunks for i in c]
    merged = DataProto.concat(outputs)
    return merged, order, startup_s, elapsed


def episode_ids(output, row: int) -> list[int]:
    batch = output.batch
    keep = batch["attention_mask"][row].bool()
    return batch["input_ids"][row][keep].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args()
    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    fixtures = load_tasks("fixtures").tasks
    tasks = [fixtures[i % len(fixtures)] for i in range(args.episodes)]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = tiny_model(tmp / "model")
        parquet = export_verl(tasks, tmp / "train.parquet")
        torch.set_num_threads(args.workers)  # the runner gets the cores the workers get
        ours, ours_s = run_ours(model, tasks)
        torch.set_num_threads(1)
        merged, order, startup_s, ray_s = run_on_ray(
            model, tmp / "model", parquet, args.workers, tmp
        )
    scores = merged.batch["rm_scores"].sum(dim=1).tolist()
    mismatches = []
    for row, index in enumerate(order):
        ref = ours[index]
        assert ref.tokens is not None
        same = (
            scores[row] == ref.reward.value
            and episode_ids(merged, row) == ref.tokens.ids[: PROMPT_LENGTH + RESPONSE_LENGTH]
            and all(merged.non_tensor_batch[k][row] == v for k, v in reward_components(ref).items())
        )
        if not same:
            mismatches.append(ref.task_id)
    result = {
        "policy": "tiny (random-weight 2-layer Llama, SmolLM2 tokenizer), greedy",
        "episodes": len(tasks),
        "ray_workers": args.workers,
        "limits": {
            "max_new_tokens": MAX_NEW_TOKENS,
            "max_agent_turns": MAX_AGENT_TURNS,
            "prompt_length": PROMPT_LENGTH,
            "response_length": RESPONSE_LENGTH,
        },
        "runner_episodes_per_s": round(len(tasks) / ours_s, 3),
        "verl_ray_episodes_per_s": round(len(tasks) / ray_s, 3),
        "speedup_vs_runner": round(ours_s / ray_s, 3),
        "ray_startup_s": round(startup_s, 2),
        "mean_reward": sum(scores) / len(scores),
        "state_matches": sum(
            float(merged.non_tensor_batch["agentwheel/state_matches"][r]) for r in range(len(order))
        ),
        "episodes_equal_to_runner": len(order) - len(mismatches),
        "mismatched_tasks": mismatches,
        "torch_threads": {"runner": 1, "each_ray_worker": 1},
        "note": "2-core machine shared with other jobs (load ~10), all niced; one run",
    }
    print(
        f"runner {result['runner_episodes_per_s']} ep/s, verl on Ray ({args.workers} workers) "
        f"{result['verl_ray_episodes_per_s']} ep/s, equal {result['episodes_equal_to_runner']}/"
        f"{len(order)}, mean reward {result['mean_reward']:.3f}"
    )
    print(write_result("verl_loop", result, args.out))
    if mismatches:
        raise SystemExit(f"episodes differ from the runner's: {mismatches}")


if __name__ == "__main__":
    main()
