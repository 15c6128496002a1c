"""The evals the study runs itself, per arm, on top of the held-out greedy pass^1 every
schedule records: sampled pass^4 on the held-out set and greedy pass^1 on a fixed sample
of the train pool (so "RL does not learn" is told apart from "RL does not generalize"),
and the scripted `cautious` policy (look up, then decline), the refuse floor, on both
held-out evals.

Each eval is `run_eval` into its own directory with `resume=True`: a killed study repeats
only the episodes it had not finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentwheel.core.dataset import load_tasks, write_tasks
from agentwheel.core.messages import SamplingParams
from agentwheel.core.run_layout import StudyLayout
from agentwheel.core.task import BRANCH_KINDS, Task
from agentwheel.envs.agent import ModelPolicy, Policy
from agentwheel.envs.scripted import SCRIPTED_POLICIES
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.user import ScriptedUser
from agentwheel.eval.evaluate import run_eval
from agentwheel.llm.types import ChatModel
from agentwheel.settings.schedule import ScheduleConfig
from agentwheel.study.config import PASS_K
from agentwheel.train.checkpoint import load_checkpoint
from agentwheel.train.generation import Generator
from agentwheel.train.model_factory import build_model
from agentwheel.train.phase_driver import PhaseProgress
from agentwheel.train.rollout import TurnSeededPolicy

SAMPLED = "sampled"  # the held-out sampled pass^4 eval's directory name
TRAIN_POOL = "train_pool"
HELD_OUT = "held_out"  # the whole held-out set
GREEDY = "greedy"  # the refuse policy's greedy eval (the model arms' come from their runs)


def spread_over_kinds(tasks: Sequence[Task], n: int, seed: int) -> list[Task]:
    """`n` tasks drawn one branch kind at a time (each kind's tasks in a seeded order), so a
    small sample still holds every kind the tasks have."""
    by_kind = {k: [t for t in tasks if t.branch_kind == k] for k in BRANCH_KINDS}
    queues = []
    for i, kind in enumerate(BRANCH_KINDS):
        order = np.random.default_rng([seed, i]).permutation(len(by_kind[kind]))
        queues.append([by_kind[kind][int(j)] for j in order])
    chosen: list[Task] = []
    while len(chosen) < min(n, len(tasks)):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return chosen


def write_eval_sets(
    held_out: Sequence[Task],
    train_pool: Sequence[Task],
    n_sampled: int | None,
    n_train: int,
    seed: int,
    files: StudyLayout,
) -> None:
    """Fix, once, the held-out set, the held-out tasks of the sampled eval and the
    train-pool sample."""
    write_tasks(held_out, files.eval_set(HELD_OUT))
    sampled = list(held_out) if n_sampled is None else spread_over_kinds(held_out, n_sampled, seed)
    write_tasks(sampled, files.eval_set(SAMPLED))
    write_tasks(spread_over_kinds(train_pool, n_train, seed + 1), files.eval_set(TRAIN_POOL))


def eval_set(files: StudyLayout, name: str) -> list[Task]:
    return load_tasks(files.eval_set(name)).tasks


def chat_model(config: ScheduleConfig, weights: Path | None) -> ChatModel:
    """The run's model with `weights` loaded (the initial weights when None), generating
    as the run's rollouts and evals do (e.g. on a bf16 copy)."""
    model = build_model(config.model, config.seed)
    if weights is not None:
        load_checkpoint(weights, model.model)
    model.model.eval()

    def model_dir() -> str:
        from agentwheel.llm.default_model import hf_spec_dir

        return hf_spec_dir(config.model.spec)

    return Generator(config.model.generation, model, lambda: model.model, model_dir).chat_model()


def evaluate_arm(
    config: ScheduleConfig,
    policy_for: Callable[[SamplingParams], Policy],
    out: Path,
    sets: StudyLayout,
    weights: str,
    *,
    sampled_temperature: float,
    refuse: bool = False,
    progress: PhaseProgress | None = None,
) -> None:
    """The arm's sampled pass^4 on the held-out set and greedy pass^1 on the train-pool
    sample (and, for the scripted floor, greedy pass^1 on the held-out set)."""
    greedy = SamplingParams(
        temperature=0.0, max_new_tokens=config.eval.max_new_tokens, seed=config.seed
    )
    sampled = greedy.model_copy(update={"temperature": sampled_temperature})
    held_out = eval_set(sets, SAMPLED)
    runs: list[tuple[str, list[Task], SamplingParams, int]] = [
        (SAMPLED, held_out, sampled, PASS_K),
        (TRAIN_POOL, eval_set(sets, TRAIN_POOL), greedy, 1),
    ]
    if refuse:
        runs.insert(0, (GREEDY, eval_set(sets, HELD_OUT), greedy, 1))
    for name, tasks, params, k in runs:
        _run(config, policy_for(params), tasks, k, out / name, params, weights, progress)


def _run(
    config: ScheduleConfig,
    policy: Policy,
    tasks: list[Task],
    k: int,
    out: Path,
    params: SamplingParams,
    weights: str,
    progress: PhaseProgress | None,
) -> None:
    total, done = len(tasks) * k, 0
    label = f"eval {out.parent.name}/{out.name}"

    def tick(_: Trajectory) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(label, done, total)

    meta: dict[str, Any] = {"sampling": params.model_dump(), "weights": weights, "stage": label}
    run_eval(
        tasks,
        policy,
        ScriptedUser(),
        k,
        out,
        config.runner.runner_config(),
        resume=True,
        meta=meta,
        on_episode=tick,
    )


def model_policy_for(model: ChatModel, name: str) -> Callable[[SamplingParams], Policy]:
    """Greedy evals act with one seed; sampled ones reseed every turn (see
    `TurnSeededPolicy`), so no two turns replay one random stream."""

    def make(params: SamplingParams) -> Policy:
        if params.temperature == 0:
            return ModelPolicy(model, params, name=name)
        return TurnSeededPolicy(model, params, name=name)

    return make


def refuse_policy_for(_: SamplingParams) -> Policy:
    """The refuse floor: decline everything after the lookups a refusal needs (`cautious`);
    declining blind passes nothing since refusals need their evidence."""
    policy: Policy = SCRIPTED_POLICIES["cautious"]()
    return policy
