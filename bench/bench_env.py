"""Environment speed: oracle episodes per second on the bundled fixtures, per tool back-end.

Goal: >= 500 episodes/s on one core. The baseline in the same run is the mock back-end
(pure dictionary look-ups); the SQLite back-end builds a fresh database per episode.
With --model, also measures the share of episode wall time spent outside the model for a
real policy (goal < 3%).

    python bench/bench_env.py [--episodes 2000] [--model hf:default]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import write_result

from agentwheel.core.dataset import load_tasks
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import OraclePolicy
from agentwheel.envs.user import ScriptedUser
from agentwheel.settings.runner import RunnerConfig


def episodes_per_second(tasks, backend: str, episodes: int) -> tuple[float, float]:
    specs = [EpisodeSpec(tasks[i % len(tasks)], trial=i // len(tasks)) for i in range(episodes)]
    runner = EpisodeRunner(OraclePolicy(), ScriptedUser(), RunnerConfig(backend=backend))  # type: ignore[arg-type]
    runner.run(specs[: len(tasks)])  # warm the expected-state cache and imports
    start = time.perf_counter()
    trajectories = runner.run(specs)
    elapsed = time.perf_counter() - start
    pass_rate = sum(t.passed for t in trajectories) / len(trajectories)
    return len(trajectories) / elapsed, pass_rate


def model_share(tasks, model_spec: str, limit: int) -> dict:
    from agentwheel.core.messages import SamplingParams
    from agentwheel.envs.agent import ModelPolicy
    from agentwheel.specs import load_chat_model

    policy = ModelPolicy(load_chat_model(model_spec), SamplingParams(max_new_tokens=128))
    specs = [EpisodeSpec(t) for t in tasks[:limit]]
    start = time.perf_counter()
    trajectories = EpisodeRunner(policy, ScriptedUser(), RunnerConfig(max_agent_turns=6)).run(specs)
    wall = time.perf_counter() - start
    model_s = sum(t.timings.model_s for t in trajectories)
    return {
        "model": model_spec,
        "episodes": len(trajectories),
        "wall_s": round(wall, 3),
        "model_s": round(model_s, 3),
        "outside_model_share": round(1 - model_s / wall, 5),
        "goal_outside_model_share": 0.03,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--tasks", default="fixtures")
    parser.add_argument("--model", default=None, help="also measure time outside a real model")
    parser.add_argument("--model-tasks", type=int, default=16)
    args = parser.parse_args()
    tasks = load_tasks(args.tasks).tasks
    result: dict = {
        "tasks": args.tasks,
        "n_tasks": len(tasks),
        "episodes": args.episodes,
        "goal_episodes_per_s": 500,
    }
    rows = {}
    for backend in ("mock", "sqlite"):
        rate, pass_rate = episodes_per_second(tasks, backend, args.episodes)
        rows[backend] = {"episodes_per_s": round(rate, 1), "oracle_pass_rate": pass_rate}
        print(f"{backend:>7}: {rate:8.1f} episodes/s  (oracle pass rate {pass_rate:.3f})")
    rows["sqlite"]["ratio_vs_mock_baseline"] = round(
        rows["sqlite"]["episodes_per_s"] / rows["mock"]["episodes_per_s"], 3
    )
    result["backends"] = rows
    if args.model:
        share = model_share(tasks, args.model, args.model_tasks)
        result["model_share"] = share
        print(f"{args.model}: {share['outside_model_share']:.2%} of wall time outside the model")
    path = write_result("env_speed", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
