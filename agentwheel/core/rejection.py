"""The one record of something a stage could not use: a workflow, a branch, a task, a seed,
a teacher answer. Every stage writes the same shape, so one reader counts them all."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Rejection(BaseModel):
    """Why `item` was dropped at `stage`.

    `item` names what was dropped (a file, `file:line`, a workflow, task or problem id);
    `reason` is short and stable enough to count by; `detail` says it for a person;
    `field` is the path inside the item, where one applies; `context` holds what a stage
    adds (the branch, the parent, the operator, the teacher's last answer, ...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str
    item: str
    reason: str
    detail: str = ""
    field: str = ""
    context: dict[str, Any] = Field(default_factory=dict)

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.item, self.field) if p)
        extra = f" ({self.detail})" if self.detail else ""
        return f"[{self.stage}] {where}: {self.reason}{extra}"


def count_reasons(rejections: Iterable[Rejection]) -> dict[str, dict[str, int]]:
    """Counts by stage, then by reason, as manifests record them."""
    by_stage: dict[str, Counter[str]] = {}
    for r in rejections:
        by_stage.setdefault(r.stage, Counter())[r.reason] += 1
    return {stage: dict(sorted(c.items())) for stage, c in sorted(by_stage.items())}
