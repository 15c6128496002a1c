"""What an LLM expansion directory holds as finished: trees, policies, kept tasks and
rejections, from earlier runs and this one. It decides which items a run still asks for
and writes each finished item the moment it is known."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from agentwheel.core.rejection import Rejection
from agentwheel.core.run_layout import REJECTIONS_FILE, TASKS_FILE
from agentwheel.core.task import Task
from agentwheel.flywheels.agentic.llm_expander.records import (
    POLICIES_FILE,
    TREES_FILE,
    JsonlAppender,
    PolicyRecord,
    TaskKey,
    TreeRecord,
    is_final,
    read_records,
    rejection_key,
)
from agentwheel.flywheels.agentic.llm_expander.schemas import PolicyAnswer
from agentwheel.flywheels.agentic.tree import BehaviorTree
from agentwheel.flywheels.agentic.workflow import Workflow


class RunState:
    """The finished items of `out_dir`, keyed by workflow id (trees, policies) and by
    (workflow id, branch id) (tasks); rejections by (stage, workflow id, branch id), the
    latest one winning."""

    def __init__(self, out_dir: Path, workflows: Mapping[str, Workflow], seed: int):
        self.workflows = workflows
        self.seed = seed
        self.trees: dict[str, BehaviorTree] = {}
        self.policies: dict[str, PolicyAnswer] = {}
        self.done_tasks: set[tuple[str, str]] = set()
        self.gate_kept: set[tuple[str, str]] = set()
        self.rejections: dict[tuple[str, str, str], Rejection] = {}
        out_dir.mkdir(parents=True, exist_ok=True)
        self._load(out_dir)
        self.files = {
            name: JsonlAppender(out_dir / name)
            for name in (TREES_FILE, POLICIES_FILE, TASKS_FILE, REJECTIONS_FILE)
        }

    def _load(self, out_dir: Path) -> None:
        # The first tree and policy of a workflow are the ones its tasks were built from.
        for tree in read_records(out_dir / TREES_FILE, TreeRecord):
            workflow = self.workflows.get(tree.workflow_id)
            if workflow is not None and workflow.id not in self.trees:
                self.trees[workflow.id] = tree.tree.to_behavior_tree(workflow, self.seed)
        for policy in read_records(out_dir / POLICIES_FILE, PolicyRecord):
            if policy.workflow_id in self.workflows and policy.workflow_id not in self.policies:
                self.policies[policy.workflow_id] = policy.policy
        for task in read_records(out_dir / TASKS_FILE, TaskKey):
            self.done_tasks.add(task.key)
            self.gate_kept.add(task.key)
        for rejection in read_records(out_dir / REJECTIONS_FILE, Rejection):
            key = rejection_key(rejection)
            self.rejections[key] = rejection
            if rejection.stage == "gate":
                self.done_tasks.add(key[1:])

    # -- what is finished ---------------------------------------------------------------

    def answered(self, stage: str, workflow_id: str, branch_id: str = "") -> bool:
        if stage == "tree":
            return workflow_id in self.trees
        if stage == "policy":
            return workflow_id in self.policies
        return stage == "task" and (workflow_id, branch_id) in self.done_tasks

    def finished(
        self, stage: str, workflow_id: str, branch_id: str = "", retry_failed: bool = True
    ) -> bool:
        """Answered, or rejected for good (a failed request counts too without `retry_failed`)."""
        if self.answered(stage, workflow_id, branch_id):
            return True
        rejection = self.rejections.get((stage, workflow_id, branch_id))
        if rejection is None:
            return False
        return is_final(rejection) or not retry_failed

    def live_rejections(self) -> list[Rejection]:
        """Rejections that still stand: a failed request a later run answered is history."""
        return [
            r
            for r in self.rejections.values()
            if is_final(r) or not self.answered(*rejection_key(r))
        ]

    # -- writing finished items -----------------------------------------------------------

    def add_tree(self, record: TreeRecord) -> BehaviorTree:
        workflow = self.workflows[record.workflow_id]
        tree = self.trees[workflow.id] = record.tree.to_behavior_tree(workflow, self.seed)
        self.files[TREES_FILE].write(record)
        return tree

    def add_policy(self, record: PolicyRecord) -> None:
        self.policies[record.workflow_id] = record.policy
        self.files[POLICIES_FILE].write(record)

    def keep_task(self, task: Task) -> bool:
        """Write a task that passed the gate; False if its branch was written before."""
        key = (task.lineage.source_workflow, task.lineage.branch)
        if key in self.done_tasks:
            return False
        self.done_tasks.add(key)
        self.gate_kept.add(key)
        self.files[TASKS_FILE].write(task)
        return True

    def reject(self, rejection: Rejection) -> None:
        key = rejection_key(rejection)
        if rejection.stage == "gate":
            self.done_tasks.add(key[1:])
        self.rejections[key] = rejection
        self.files[REJECTIONS_FILE].write(rejection)

    def sync(self) -> None:
        for appender in self.files.values():
            appender.sync()

    def close(self) -> None:
        self.sync()
        for appender in self.files.values():
            appender.close()
