"""Typed, counted rejections: a seed, a teacher answer or an evolved problem the flywheel
could not use, with the stage that dropped it and why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

RejectionStage = Literal[
    "load",  # a seed line or row that is not a problem
    "seed_check",  # a seed whose answer is not checkable / not exact
    "operator",  # an operator that does not apply to this parent
    "teacher_output",  # teacher output still unusable after its retries
    "exact_check",  # a procedural child whose answer the generator does not confirm
    "consistency",  # too few solver models agree with the proposed answer
    "duplicate",
    "near_duplicate",
    "band",  # outside the learnable band under the current policy
]


class Rejection(BaseModel):
    """Why `item` was dropped. `item` is a problem id, or `file:line` at load time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: RejectionStage
    item: str
    reason: str
    detail: str = ""
    parent_id: str | None = None
    operator: str | None = None

    def __str__(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"[{self.stage}] {self.item}: {self.reason}{extra}"


def count_reasons(rejections: Iterable[Rejection]) -> dict[str, dict[str, int]]:
    """Counts by stage, then by reason, as written to the manifest."""
    by_stage: dict[str, Counter[str]] = {}
    for r in rejections:
        by_stage.setdefault(r.stage, Counter())[r.reason] += 1
    return {stage: dict(sorted(c.items())) for stage, c in sorted(by_stage.items())}
