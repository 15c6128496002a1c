"""What every RL round's settings have, whatever its kind."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RLRound(BaseModel):
    """What every RL round has: GRPO steps over groups of rollouts of one item each.

    A kind's settings subclass this and narrow `kind` to their own literal."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(2, ge=0, description="GRPO optimizer steps.")
    batch_groups: int = Field(4, ge=1, description="Informative groups (items) per step.")
    group_size: int = Field(4, ge=2, description="Rollouts per item.")
    max_attempts: int = Field(3, ge=1, description="Dynamic-sampling rounds per step.")
    kind: str = Field(description="Which round kind (see agentwheel/settings/rounds.py).")
