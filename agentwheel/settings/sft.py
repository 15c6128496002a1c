"""A schedule's SFT warm start: oracle episodes of the train pool, and the trainer's knobs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from agentwheel.core.task import BranchKind
from agentwheel.settings.strict import Strict, reject_unknown_fields
from agentwheel.settings.trainer import SFTConfig


class SFTSettings(Strict):
    enabled: bool = True
    trials: int = Field(1, ge=1, description="Oracle episodes per train-pool task.")
    max_tasks: int | None = Field(None, ge=1, description="Cap on the tasks used for SFT data.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    kind_repeats: dict[BranchKind, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="Oracle episodes per task of a branch kind, times `trials` (1 where absent): "
        "more happy and clarify demos keep the warm start from learning that refusing pays.",
    )
    train: SFTConfig = Field(default_factory=SFTConfig)

    @field_validator("train", mode="before")
    @classmethod
    def _known_sft_fields(cls, value: Any) -> Any:
        return reject_unknown_fields(SFTConfig, value)
