"""Reasoning RL rounds: single-turn answers to problems, scored by the verified reasoning
reward (correctness plus a small format term); the reasoning flywheel evolves the problems
the policy gets wrong, or only sometimes right.

Files: reasoning/seeds/ (the seeds, synthesized on first use), and in the round directory
evolve/, problems.jsonl (the round's problems), problem_pool.jsonl (the pool grown by the
band: where the next reasoning round starts).
"""

from __future__ import annotations

from pathlib import Path

from agentwheel.core.messages import SamplingParams
from agentwheel.core.run_layout import PROBLEMS_FILE, RoundLayout
from agentwheel.flywheels.reasoning.evolve import EvolveConfig, evolve_reasoning
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.reward import ReasoningReward
from agentwheel.flywheels.reasoning.seeds import load_seed_file, write_problems
from agentwheel.flywheels.reasoning.synth import SynthConfig, synth_reasoning
from agentwheel.settings.reasoning_round import ReasoningRound
from agentwheel.train.reasoning_rollout import collect_reasoning_groups
from agentwheel.train.rollout import RolloutBatch, TaskStream, rollout_seed
from agentwheel.train.rounds.base import Band, RoundKind
from agentwheel.train.run_context import RunContext


def answer_params(run: RunContext, settings: ReasoningRound, seed: int) -> SamplingParams:
    """How the policy samples an answer: the run's rollout temperature, the round's length."""
    return SamplingParams(
        temperature=run.config.rollout.temperature,
        max_new_tokens=settings.max_new_tokens,
        seed=seed,
    )


class ReasoningRounds(RoundKind[ReasoningRound, Problem]):
    name = "reasoning"
    settings = ReasoningRound
    noun = "problems"

    def _pool_path(self, run: RunContext, round_: int, settings: ReasoningRound) -> Path:
        """The last reasoning round's pool, or the seeds (synthesized into
        `reasoning/seeds` on first use)."""
        previous = run.previous_round(round_, self.name)
        if previous is not None:
            return run.layout.round(previous).problem_pool
        seeds = run.layout.reasoning_seeds
        if not (seeds / PROBLEMS_FILE).exists():
            synth_reasoning(
                settings.seeds, seeds, SynthConfig(seed=run.config.seed, limit=settings.seed_limit)
            )
        return seeds / PROBLEMS_FILE

    def pool(self, run: RunContext, round_: int, settings: ReasoningRound) -> list[Problem]:
        return load_seed_file(self._pool_path(run, round_, settings)).problems

    def evolve(
        self, run: RunContext, round_: int, settings: ReasoningRound, pool: list[Problem]
    ) -> Band[Problem] | None:
        if not settings.evolve:
            return None
        config = EvolveConfig(
            n=settings.band_samples,
            round=round_,
            limit=settings.probe_problems,
            policy_params=answer_params(
                run, settings, rollout_seed(run.config.seed, round_, 2_000_000)
            ),
            answer_format=settings.answer_format,
            seed=rollout_seed(run.config.seed, round_),
        )
        out = run.layout.round(round_).evolve
        # Journaled by the flywheel: a killed evolve resumes where it stopped.
        manifest = evolve_reasoning(
            self._pool_path(run, round_, settings),
            run.policy.chat_model(),
            None,
            out,
            config=config,
        )
        band = load_seed_file(out / PROBLEMS_FILE).problems
        report = {
            "evolve_counts": manifest["counts"],
            "evolve_pass_rates": manifest["pass_rates"],
            "band": len(band),
        }
        return Band(band, report)

    def write_selection(
        self, files: RoundLayout, items: list[Problem], pool: list[Problem], band: list[Problem]
    ) -> None:
        known = {p.id for p in pool}
        write_problems(items, files.problems)
        write_problems([*pool, *(p for p in band if p.id not in known)], files.problem_pool)

    def selected_items(self, files: RoundLayout) -> list[Problem]:
        return load_seed_file(files.problems).problems

    def collect_groups(
        self,
        run: RunContext,
        round_: int,
        settings: ReasoningRound,
        stream: TaskStream[Problem],
        step: int,
    ) -> RolloutBatch:
        """Single-turn answers, graded by the verified reasoning reward."""
        return collect_reasoning_groups(
            run.policy.chat_model(),
            lambda attempt: answer_params(
                run, settings, rollout_seed(run.config.seed, round_, step, attempt)
            ),
            stream,
            settings.batch_groups,
            settings.group_size,
            ReasoningReward(settings.answer_format, format_weight=settings.format_weight),
            dynamic_sampling=run.config.grpo.dynamic_sampling,
            max_attempts=settings.max_attempts,
        )
