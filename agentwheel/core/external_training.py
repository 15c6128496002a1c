"""The contract between the multi-round schedule and an external RL engine (verl on Ray).

With an external trainer, a round's `grpo` phase hands the engine one `ExternalRoundJob`
— the round's tasks, the held-out set, the weights to start from, the round's budget and
the run's GRPO settings — and gets back an `ExternalRoundResult`: the weights after the
round (a Hugging Face model directory) and one metrics dict per step. Everything else
(evolve, band, held-out eval, checkpoints, report) stays the schedule's.

The engine keeps its own state in `job.out_dir`; asked again with the same job after a
kill, it must continue from there (or return at once when the round is already done).
Plain data only, so that both the schedule and the integrations can import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class ExternalRoundJob:
    """One RL round for an external engine."""

    round: int
    tasks: Path  # the round's tasks (JSONL of agentwheel Tasks)
    held_out: Path  # the held-out tasks (JSONL), for the engine's own validation
    init_model: Path  # Hugging Face model directory (weights + tokenizer) to start from
    out_dir: Path  # the engine's own state for this round; a rerun resumes from it
    seed: int
    steps: int  # optimizer steps
    groups_per_step: int  # tasks per step
    rollouts_per_group: int
    max_attempts: int  # dynamic-sampling generation rounds per step
    lr: float
    clip_low: float
    clip_high: float
    kl_coef: float
    temperature: float
    max_new_tokens: int  # per agent turn
    max_agent_turns: int
    max_episode_tokens: int
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    wrong_stance_penalty: float = 0.0  # grpo.wrong_stance_penalty: the training reward's


@dataclass(frozen=True)
class ExternalRoundResult:
    """What a finished round left: the trained weights and its per-step metrics."""

    model_dir: Path  # Hugging Face model directory with the weights after the round
    steps: list[dict[str, float]]  # one dict per optimizer step, in order


class ExternalTrainingFailed(RuntimeError):
    """The engine failed a round; the message says where its output is and how to go on."""


class ExternalTrainer(Protocol):
    """An RL engine the schedule can run its rounds on."""

    name: str

    def train_round(self, job: ExternalRoundJob) -> ExternalRoundResult:
        """Train one round (or finish it, when `job.out_dir` holds an interrupted one)."""
        ...
