"""What the browser page is given: one JSON document, typed here.

Episodes keep their text as written (the page renders it as text, never as markup). Each
system prompt is stored once in `PageData.prompts` and episodes point at it by index, since
every episode of a task repeats the same policy text and it would otherwise be most of the
file on a large run.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer


class Turn(BaseModel):
    """One message: `role`, its text, its tool calls (name and arguments), and for a tool
    result the call it answers. A system message carries `prompt` (an index into
    `PageData.prompts`) instead of its text."""

    role: str
    text: str = ""
    calls: list[dict[str, Any]] = Field(default_factory=list)
    call_id: str | None = None
    tool: str | None = None
    prompt: int | None = None

    @model_serializer(mode="wrap")
    def _omit_empty(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Most turns leave most fields empty; on a 10,000-episode page they were a fifth
        # of the file.
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v not in (None, "", [])}


class RowChange(BaseModel):
    """A row of one table that differs between the expected and the final state, matched on
    the table's first column; `expected` or `final` is None where the row is missing."""

    table: str
    columns: list[str]
    expected: list[Any] | None = None
    final: list[Any] | None = None


class StateDiff(BaseModel):
    """How the episode's final state differs from the normal path's, found by replaying
    both on a fresh environment: the state-changing calls only one of them made, and for a
    SQLite world the rows that differ. `note` says why no rows are shown when none are."""

    missing_actions: list[str] = Field(default_factory=list)
    extra_actions: list[str] = Field(default_factory=list)
    rows: list[RowChange] = Field(default_factory=list)
    note: str = ""


class EpisodeView(BaseModel):
    """One episode as the page shows it (short keys: a large run holds thousands)."""

    group: int
    task: str
    trial: int
    domain: str
    workflow: str
    kind: str
    policy: str
    backend: str
    passed: bool | None
    termination: str
    error: str | None = None
    reward: dict[str, Any] = Field(default_factory=dict)
    counts: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    turns: list[Turn] = Field(default_factory=list)
    hack_turn: int | None = None  # index into `turns` of the user turn that revealed it
    diff: StateDiff | None = None


class TaskView(BaseModel):
    """The task behind episodes: what the agent was told and given, and what the user and
    the evaluation hold."""

    id: str
    domain: str
    kind: str
    workflow: str
    instruction: str
    tools: list[dict[str, Any]]
    user: dict[str, Any]
    normal_path: list[dict[str, Any]]
    hack_path: list[dict[str, Any]]
    evaluation: dict[str, Any]
    lineage: dict[str, Any]
    backend: str


class GroupView(BaseModel):
    """A set of episodes from one traces file: an eval, a round's rollouts, a probe."""

    name: str  # path of its folder relative to the directory viewed
    label: str
    role: str  # held-out eval | rollouts | probe | band samples | eval
    stage: str = ""
    round: int | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
    skipped_lines: list[str] = Field(default_factory=list)


class Curve(BaseModel):
    key: str
    title: str
    points: list[tuple[float, float]]


class StageView(BaseModel):
    """Held-out pass^1 after one stage of a run (base, after SFT, after each RL round)."""

    name: str
    label: str
    pass1: float
    n_tasks: int | None = None
    by_kind: dict[str, float] = Field(default_factory=dict)
    unseen_workflows: float | None = None
    seen_workflows: float | None = None


class RunView(BaseModel):
    stages: list[StageView] = Field(default_factory=list)
    curves: list[Curve] = Field(default_factory=list)
    rounds: list[dict[str, Any]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class PageData(BaseModel):
    title: str
    source: str
    kind: str  # run | eval | tasks
    created: str
    run: RunView | None = None
    groups: list[GroupView] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    tasks: dict[str, TaskView] = Field(default_factory=dict)
    episodes: list[EpisodeView] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
