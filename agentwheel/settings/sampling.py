"""How a policy samples: in a schedule's rollouts (`rollout:`) and in its held-out evals
(`eval:`). `EvalSettings`' defaults are also `agentwheel eval`'s, so a checkpoint
evaluated by hand is measured as the run measured it."""

from __future__ import annotations

from pydantic import Field

from agentwheel.core.messages import SamplingParams
from agentwheel.settings.strict import Strict

SAMPLED_EVAL_TEMPERATURE = 0.7
"""The temperature of a sampled (pass^k, k > 1) eval when none is given."""


class SamplingSettings(Strict):
    temperature: float = Field(
        1.0,
        gt=0,
        description="Rollout sampling temperature; GRPO's log-probs are of logits / this.",
    )
    max_new_tokens: int = Field(128, ge=1, description="Tokens per agent turn.")


class EvalSettings(Strict):
    k: int = Field(1, ge=1, description="Trials per held-out task (pass^1..pass^k).")
    temperature: float = Field(0.0, ge=0, description="0 = greedy.")
    max_new_tokens: int = Field(128, ge=1, description="Tokens per agent turn.")

    def sampling(self, seed: int) -> SamplingParams:
        """How a held-out eval samples (in a run, and in `agentwheel eval`)."""
        return SamplingParams(
            temperature=self.temperature, max_new_tokens=self.max_new_tokens, seed=seed
        )
