"""Where a run's tasks come from: the train workflows, the held-out ones, and how many
tasks of each (synthesized by agentwheel/train/phases.py)."""

from __future__ import annotations

from pydantic import Field, model_validator

from agentwheel.core.task import BranchKind
from agentwheel.settings.strict import Strict


class DataSettings(Strict):
    workflows_dir: str | None = Field(None, description="Workflow YAML dir; None = bundled.")
    train_workflows: list[str] | None = Field(
        None, description="Workflow ids to train on; None = all but the held-out ones."
    )
    held_out_workflows: list[str] = Field(
        min_length=1, description="Workflow ids never trained on: the held-out eval set."
    )
    tasks_per_workflow: int = Field(8, ge=1, description="Train-pool tasks per workflow.")
    held_out_tasks: int = Field(
        8, ge=1, description="Held-out tasks from the held-out workflows, evaluated each stage."
    )
    held_out_seen_tasks: int = Field(
        0,
        ge=0,
        description="Also held out: new tasks of the train workflows (other data and "
        "phrasing, never in the train pool).",
    )
    rl_tasks_per_workflow: int = Field(
        0,
        ge=0,
        description="An RL pool of its own: new tasks of the train workflows (other data and "
        "phrasing, none in the train pool or the held-out set) that the agentic rounds start "
        "from, so RL meets tasks SFT never imitated; 0 = the rounds start from the train pool.",
    )
    rl_workflows: list[str] = Field(
        default_factory=list,
        description="Workflow ids only RL trains on: their tasks join the RL pool, never "
        "SFT's train pool or the held-out set (needs rl_tasks_per_workflow > 0).",
    )
    extra_conditions: int = Field(0, ge=0, description="Extra preconditions in the pool trees.")
    extra_train_tasks: list[str] = Field(
        default_factory=list,
        description="Task sets added to the train pool as they are: a tasks file, a stage "
        "directory or a bundled set (search-fixtures, analysis-fixtures), so one run trains "
        "on workflow, search and analysis tasks together.",
    )
    reuse_from: str | None = Field(
        None,
        description="Copy the train pool and held-out set from this data directory (another "
        "run's data/) instead of synthesizing them.",
    )
    require_branch_kinds: list[BranchKind] = Field(
        default_factory=list,
        description="Fail the data phase when the train pool or the held-out set lacks one "
        "of these branch kinds.",
    )

    @model_validator(mode="after")
    def _rl_workflows_are_rl_only(self) -> DataSettings:
        if self.rl_workflows and not self.rl_tasks_per_workflow:
            raise ValueError("data.rl_workflows needs data.rl_tasks_per_workflow > 0")
        clash = sorted(set(self.rl_workflows) & set(self.held_out_workflows))
        if clash:
            raise ValueError(f"data.rl_workflows are also held out: {clash}")
        trained = sorted(set(self.rl_workflows) & set(self.train_workflows or []))
        if trained:
            raise ValueError(f"data.rl_workflows are also train workflows (SFT's): {trained}")
        return self
