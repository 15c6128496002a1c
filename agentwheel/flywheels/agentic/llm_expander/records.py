"""What an LLM expansion run keeps in its directory, one JSONL file per stage plus the
manifest, and how it reads them back to resume.

Each file is append-only, one flushed line per finished item. A run killed mid-write
leaves a torn last line; reading cuts it off, so `tasks.jsonl` stays a loadable dataset
and the next append starts on a line of its own. Lines that do not validate are skipped
(and logged): their items are simply asked for again.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from agentwheel.core.jsonl import cut_torn_tail, read_models
from agentwheel.core.rejection import Rejection
from agentwheel.core.task import Lineage
from agentwheel.flywheels.agentic.llm_expander.schemas import PolicyAnswer, TreeAnswer

log = logging.getLogger(__name__)

Stage = Literal["tree", "policy", "task"]
STAGES: tuple[Stage, ...] = ("tree", "policy", "task")
TREES_FILE = "trees.jsonl"
POLICIES_FILE = "policies.jsonl"
# The reason of a teacher call that failed after the client's retries: not a verdict on
# the item, so a rerun asks again. `invalid_answer`: still unusable after the repair
# turns; gate reasons are those of `validate_tasks`.
REQUEST_FAILED = "request_failed"

ModelT = TypeVar("ModelT", bound=BaseModel)


class TreeRecord(BaseModel):
    """A line of `trees.jsonl`: the teacher's stage-1 answer for a workflow."""

    workflow_id: str
    round: int
    teacher: str
    attempts: int
    tree: TreeAnswer


class PolicyRecord(BaseModel):
    """A line of `policies.jsonl`: the teacher's stage-2 answer for a workflow."""

    workflow_id: str
    round: int
    teacher: str
    attempts: int
    policy: PolicyAnswer


class TaskKey(BaseModel):
    """What resuming needs of a line of `tasks.jsonl`: which workflow and branch it is."""

    model_config = ConfigDict(extra="ignore")

    lineage: Lineage

    @property
    def key(self) -> tuple[str, str]:
        return self.lineage.source_workflow, self.lineage.branch


def llm_rejection(
    stage: str,
    workflow_id: str,
    reason: str,
    detail: str,
    *,
    branch: str = "",
    field: str = "",
    attempts: int | None = None,
    answer: str = "",
    task: dict[str, Any] | None = None,
) -> Rejection:
    """The core `Rejection` of an item of this run: `item` is the workflow id; `context`
    holds the branch, the attempts, the teacher's last unusable answer (truncated) or the
    candidate task the gate refused, where there are any."""
    context: dict[str, Any] = {"branch": branch} if branch else {}
    if attempts is not None:
        context["attempts"] = attempts
    if answer:
        context["answer"] = answer[:4000]
    if task is not None:
        context["task"] = task
    return Rejection(
        stage=stage, item=workflow_id, reason=reason, detail=detail, field=field, context=context
    )


def is_final(rejection: Rejection) -> bool:
    """A verdict on the item; a failed request is not one, and a rerun retries it."""
    return rejection.reason != REQUEST_FAILED


def rejection_key(rejection: Rejection) -> tuple[str, str, str]:
    """(stage, workflow id, branch id): the item a rejection is about."""
    return rejection.stage, rejection.item, str(rejection.context.get("branch", ""))


def read_records(path: Path, model: type[ModelT]) -> list[ModelT]:
    """The records of a run file, its torn tail cut off first."""
    dropped = cut_torn_tail(path)
    if dropped:
        log.warning("%s: dropped a torn last line (%d bytes)", path, dropped)
    records, unreadable = read_models(path, model)
    if unreadable:
        log.warning("%s: skipped %d unreadable lines", path, unreadable)
    return records


class JsonlAppender:
    """Appends JSON lines, flushed per item; `sync` puts them on the disk."""

    def __init__(self, path: Path):
        self.path = path
        self._handle: IO[str] | None = None
        self._dirty = False

    def write(self, record: BaseModel) -> None:
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._handle.write(record.model_dump_json() + "\n")
        self._handle.flush()
        self._dirty = True

    def sync(self) -> None:
        if self._handle is not None and self._dirty:
            os.fsync(self._handle.fileno())
            self._dirty = False

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class StageCounts(BaseModel):
    """Totals over every run in `out_dir` (`done`, `rejected`, `failed`) and this run's work."""

    done: int = 0
    rejected: int = 0
    failed: int = 0
    """Items whose request failed and that a rerun will retry."""
    resumed: int = 0
    """Items finished by an earlier run and not requested again."""
    requests: int = 0
    repairs: int = 0


class Manifest(BaseModel):
    teacher: str
    round: int
    status: Literal["complete", "stopped"]
    stop_reason: str = ""
    workflows: int
    stages: dict[str, StageCounts]
    tasks_kept: int
    rejections_by_reason: dict[str, int]
    requests: int
    waves: int
    """`teacher.chat` calls made."""
    seconds: float
    teacher_stats: dict[str, Any] | None = None
    config: dict[str, Any]
