"""Agentic RL rounds: multi-turn episodes with tools and a scripted user, rewarded by the
environment's state check; the agentic flywheel evolves new tasks from the last rollouts.

Files in the round directory: probe/ (when no earlier rollouts exist), evolve/,
tasks.jsonl (the round's tasks), pool.jsonl (the pool grown by the band: where the next
agentic round starts).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from agentwheel.core.dataset import load_tasks, write_tasks
from agentwheel.core.run_layout import TASKS_FILE, RoundLayout
from agentwheel.core.task import Task
from agentwheel.envs.user import ScriptedUser
from agentwheel.eval.evaluate import SUMMARY, run_eval
from agentwheel.flywheels.agentic.evolve import evolve_agentic
from agentwheel.settings.agentic_round import AgenticRound
from agentwheel.train.grpo import training_reward
from agentwheel.train.phases import rl_start_pool, rl_workflow_paths
from agentwheel.train.rollout import (
    RolloutBatch,
    StratifiedTaskStream,
    TaskStream,
    branch_kind_mix,
    collect_groups,
    rollout_seed,
)
from agentwheel.train.rounds.base import Band, RoundKind
from agentwheel.train.run_context import RunContext


def band_topped_up(
    band: list[Task], pool: list[Task], need: int, rng: np.random.Generator
) -> tuple[list[Task], str]:
    """The round's tasks: the learnable band, plus pool tasks drawn at random when the
    band has fewer than `need` (one band task whose rollouts all fail would leave the
    round without a single update)."""
    if len(band) >= need:
        return band, "learnable band of evolved tasks"
    ids = {t.id for t in band}
    rest = [t for t in pool if t.id not in ids]
    picked = [rest[int(i)] for i in rng.permutation(len(rest))[: need - len(band)]]
    return [*band, *picked], f"learnable band ({len(band)}) topped up with {len(picked)} pool tasks"


class AgenticRounds(RoundKind[AgenticRound, Task]):
    name = "agentic"
    settings = AgenticRound

    def pool(self, run: RunContext, round_: int, settings: AgenticRound) -> list[Task]:
        """The last agentic round's grown pool, or the RL pool (the train pool when the
        run has none)."""
        previous = run.previous_round(round_, self.name)
        path = (
            run.layout.round(previous).pool
            if previous
            else rl_start_pool(run.layout, run.config.data)
        )
        return load_tasks(path).tasks

    def evolve(
        self, run: RunContext, round_: int, settings: AgenticRound, pool: list[Task]
    ) -> Band[Task] | None:
        """Evolve from the last agentic round's rollouts (or from a probe of the pool)."""
        if not settings.evolve:
            return None
        source = self._evolve_source(run, round_, settings, pool)
        out = run.layout.round(round_).evolve
        shutil.rmtree(out, ignore_errors=True)
        manifest = evolve_agentic(
            source,
            run.policy.rollout_policy(round_, 2_000_000),
            out,
            samples=settings.band_samples,
            tasks_per_workflow=settings.evolve_tasks_per_workflow,
            seed=rollout_seed(run.config.seed, round_),
            workflows=rl_workflow_paths(run.config.data),  # type: ignore[arg-type]
            config=run.runner_config,
            operators=settings.operators,
        )
        report = {
            "evolve_source": str(source.relative_to(run.dir)),
            "evolved_generated": manifest.generated,
            "evolved_validated": manifest.validated,
            "band": manifest.band,
            "evolved_pass_rate": manifest.evolved_pass_rate,
            "evolved_by_operator": manifest.tasks_by_operator,
        }
        return Band(load_tasks(out / TASKS_FILE).tasks, report)

    def _evolve_source(
        self, run: RunContext, round_: int, settings: AgenticRound, pool: list[Task]
    ) -> Path:
        """Rollouts the flywheel learns from: the last agentic round's, or (first round,
        or none summarized) a fresh probe of `probe_tasks` pool tasks."""
        previous = run.previous_round(round_, self.name)
        source = run.layout.round(previous or 0).rollouts
        if previous is not None and (source / SUMMARY).exists():
            return source
        source = run.layout.round(round_).probe
        shutil.rmtree(source, ignore_errors=True)
        rng = np.random.default_rng([run.config.seed, round_, 0])
        probe = [pool[int(i)] for i in rng.permutation(len(pool))[: settings.probe_tasks]]
        write_tasks(probe, source / TASKS_FILE)
        run_eval(
            probe,
            run.policy.rollout_policy(round_, 1_000_000),
            ScriptedUser(),
            1,
            source,
            run.runner_config,
            meta={"tasks": str(source / TASKS_FILE), "stage": f"probe-{round_}"},
        )
        return source

    def train_on_band(
        self,
        run: RunContext,
        round_: int,
        settings: AgenticRound,
        band: list[Task],
        pool: list[Task],
    ) -> tuple[list[Task], str]:
        need = settings.min_round_tasks or settings.steps * settings.batch_groups
        rng = np.random.default_rng([run.config.seed, round_, 1])
        return band_topped_up(band, pool, need, rng)

    def write_selection(
        self, files: RoundLayout, items: list[Task], pool: list[Task], band: list[Task]
    ) -> None:
        write_tasks(items, files.tasks)
        write_tasks([*pool, *band], files.pool)

    def selected_items(self, files: RoundLayout) -> list[Task]:
        return load_tasks(files.tasks).tasks

    def task_stream(
        self, run: RunContext, round_: int, settings: AgenticRound, items: list[Task]
    ) -> TaskStream[Task]:
        seed = rollout_seed(run.config.seed, round_)
        if settings.balance_kinds:
            return StratifiedTaskStream(items, seed, lambda task: task.branch_kind)
        return TaskStream(items, seed)

    def collect_groups(
        self,
        run: RunContext,
        round_: int,
        settings: AgenticRound,
        stream: TaskStream[Task],
        step: int,
    ) -> RolloutBatch:
        """Episodes against the scripted user; the reward is the environment's verdict.
        The step's metrics carry the branch-kind mix of the batch and the reward per kind."""
        batch = collect_groups(
            lambda attempt: run.policy.rollout_policy(round_, step, attempt),
            stream,
            settings.batch_groups,
            settings.group_size,
            dynamic_sampling=run.config.grpo.dynamic_sampling,
            max_attempts=settings.max_attempts,
            runner_config=run.runner_config,
            reward_fn=training_reward(run.config.grpo),
        )
        batch.extra_metrics.update(branch_kind_mix(batch))
        return batch
