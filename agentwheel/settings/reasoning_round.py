"""A reasoning RL round's settings (the round itself: agentwheel/train/rounds/reasoning.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentwheel.settings.answer_format import AnswerFormat
from agentwheel.settings.rl_round import RLRound


class ReasoningRound(RLRound):
    """One reasoning RL round: reasoning-flywheel refresh, then GRPO on verified answers."""

    kind: Literal["reasoning"] = "reasoning"
    seeds: str = Field(
        "bundled",
        description="Seed problems for the first reasoning round (as `synth reasoning --seeds`).",
    )
    seed_limit: int | None = Field(64, ge=1, description="Keep only the first N seeds.")
    evolve: bool = Field(True, description="Evolve problems with the reasoning flywheel first.")
    probe_problems: int = Field(16, ge=1, description="Pool problems attempted by the flywheel.")
    band_samples: int = Field(2, ge=1, description="Attempts per problem for the band.")
    max_new_tokens: int = Field(256, ge=1, description="Tokens per answer.")
    format_weight: float = Field(0.1, ge=0, description="Reward for the answer format.")
    answer_format: AnswerFormat = Field(default_factory=AnswerFormat)
