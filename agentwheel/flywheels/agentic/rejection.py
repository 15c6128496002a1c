"""Typed, counted rejections: a workflow, branch or task the pipeline could not use."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

RejectionStage = Literal["load", "expand", "world", "replay", "near_duplicate"]


class Rejection(BaseModel):
    """Why something was dropped. `workflow` is the file (load stage) or the workflow id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: RejectionStage
    workflow: str
    reason: str
    field: str = ""
    branch: str = ""

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.workflow, self.branch, self.field) if p)
        return f"[{self.stage}] {where}: {self.reason}"
