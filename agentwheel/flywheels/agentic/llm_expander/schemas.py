"""What the teacher answers at each stage, as strict models whose errors name the field.

The teacher writes the tree in its own vocabulary (`condition`, `tools`), the one the
prompts teach; `TreeAnswer.to_behavior_tree` turns it into the `BehaviorTree` both
expanders share.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentwheel.core.task import BranchKind, Evaluation, ToolCallStep, ToolSpec
from agentwheel.flywheels.agentic.branches import Branch, branches_from
from agentwheel.flywheels.agentic.tree import BehaviorTree, Outcome, TreeNode
from agentwheel.flywheels.agentic.workflow import Workflow

OUTCOME_FOR_KIND: dict[str, str] = {
    "happy": "EXECUTE",
    "clarify": "CLARIFY",
    "refuse": "REFUSE",
    "transfer": "TRANSFER",
}
_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_TOOL_KEYS = ("name", "description", "parameters", "kind")
_STEP_KEYS = ("tool", "arguments", "expected_output")
_STEP_RENAMES = {"tool_name": "tool", "name": "tool", "input": "arguments", "args": "arguments"}
_EVALUATION_KEYS = ("required_signals", "required_outputs", "description")


class _Answer(BaseModel):
    # Teachers add keys of their own (reasoning, notes); they are ignored, not errors.
    model_config = ConfigDict(extra="ignore")


def _only(value: Any, keys: Sequence[str], renames: dict[str, str] | None = None) -> Any:
    """A teacher's object cut down to the keys a strict schema model takes (other keys are
    commentary), with the paper's key names mapped to ours; non-objects pass through."""
    if not isinstance(value, dict):
        return value
    renames = renames or {}
    renamed = {renames.get(k, k): v for k, v in value.items() if renames.get(k, k) not in value}
    renamed.update({k: v for k, v in value.items() if k in keys})
    return {k: v for k, v in renamed.items() if k in keys}


def _each_only(value: Any, keys: Sequence[str], renames: dict[str, str] | None = None) -> Any:
    return [_only(v, keys, renames) for v in value] if isinstance(value, list) else value


class TreeNodeAnswer(_Answer):
    """A node of the teacher's behavior tree; leaves carry the outcome and branch kind."""

    id: str
    condition: str
    tools: list[str] = Field(default_factory=list)
    outcome: Outcome | None = None
    branch_kind: BranchKind | None = None
    children: list[TreeNodeAnswer] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_is_short_slug(cls, value: str) -> str:
        if not _NODE_ID.match(value):
            raise ValueError(
                f"node id {value!r} must be 1-64 letters, digits, dots, dashes or underscores"
            )
        return value

    def walk(self) -> Iterable[TreeNodeAnswer]:
        yield self
        for child in self.children:
            yield from child.walk()

    def to_node(self, is_root: bool = False) -> TreeNode:
        """The shared tree node: the condition is the edge's label, the tools its steps."""
        return TreeNode(
            id=self.id,
            edge="request" if is_root else "condition",
            label=self.condition,
            steps=list(self.tools),
            outcome=self.outcome,
            branch_kind=self.branch_kind,
            children=[child.to_node() for child in self.children],
        )


class TreeAnswer(_Answer):
    """Stage 1: the task description, the tools and the behavior tree.

    Checked beyond the schema: tool names are unique, at least one query and one action
    tool, node ids unique, node tools exist, leaves have a consistent outcome and kind,
    the tree keeps a happy path and has clarify, refuse, transfer and adversarial leaves,
    a TRANSFER leaf has an action `transfer_tool`, and there are at most `max_branches`
    leaves (validation context).
    """

    task: str = Field(min_length=1)
    tools: list[ToolSpec] = Field(min_length=3, max_length=5)
    transfer_tool: str | None = None
    behavior_tree: TreeNodeAnswer

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_fields(cls, tools: Any) -> Any:
        return _each_only(tools, _TOOL_KEYS)

    @model_validator(mode="after")
    def _tree_is_usable(self, info: Any) -> TreeAnswer:
        max_branches = (info.context or {}).get("max_branches") if info is not None else None
        problems = self._tool_problems() + self._node_problems(max_branches)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _tool_problems(self) -> list[str]:
        problems: list[str] = []
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            problems.append(f"tool names repeat: {names}")
        if {t.kind for t in self.tools} != {"query", "action"}:
            problems.append("tools need at least one 'query' and one 'action' tool")
        return problems

    def _node_problems(self, max_branches: int | None) -> list[str]:
        problems: list[str] = []
        names = [t.name for t in self.tools]
        nodes = list(self.behavior_tree.walk())
        ids = Counter(n.id for n in nodes)
        repeated = sorted(i for i, c in ids.items() if c > 1)
        if repeated:
            problems.append(f"node ids must be unique, repeated: {repeated}")
        leaves = [n for n in nodes if not n.children]
        for node in nodes:
            unknown = [t for t in node.tools if t not in names]
            if unknown:
                problems.append(f"node {node.id!r} calls unknown tools {unknown}")
            if node.children and (node.outcome or node.branch_kind):
                problems.append(f"inner node {node.id!r} must not have an outcome or branch_kind")
        for leaf in leaves:
            if leaf.outcome is None or leaf.branch_kind is None:
                problems.append(f"leaf {leaf.id!r} needs both an outcome and a branch_kind")
                continue
            wanted = OUTCOME_FOR_KIND.get(leaf.branch_kind)
            if wanted is not None and leaf.outcome != wanted:
                problems.append(
                    f"leaf {leaf.id!r}: branch_kind {leaf.branch_kind!r} needs outcome {wanted!r}"
                )
        leaf_kinds = {leaf.branch_kind for leaf in leaves}
        if "happy" not in leaf_kinds:
            problems.append("the tree must keep the workflow's happy path (a 'happy' leaf)")
        missing = [
            k for k in ("clarify", "refuse", "transfer", "adversarial") if k not in leaf_kinds
        ]
        if missing:
            problems.append(f"the tree needs at least one branch of each kind; missing: {missing}")
        if self.transfer_tool is not None:
            spec = next((t for t in self.tools if t.name == self.transfer_tool), None)
            if spec is None or spec.kind != "action":
                problems.append(f"transfer_tool {self.transfer_tool!r} must be an action tool")
        if any(leaf.outcome == "TRANSFER" for leaf in leaves) and self.transfer_tool is None:
            problems.append("a TRANSFER leaf needs `transfer_tool` to name the hand-off tool")
        if max_branches is not None and len(leaves) > max_branches:
            problems.append(f"{len(leaves)} leaves; use at most {max_branches}")
        return problems

    def to_behavior_tree(
        self, workflow: Workflow, seed: int, expander: str = "llm"
    ) -> BehaviorTree:
        """The shared tree type, carrying the teacher's tools, hand-off tool and task."""
        return BehaviorTree(
            workflow_id=workflow.id,
            domain=workflow.domain,
            expander=expander,
            seed=seed,
            rules=[],
            root=self.behavior_tree.to_node(is_root=True),
            tools=list(self.tools),
            transfer_tool=self.transfer_tool,
            task=self.task,
        )


def tree_branches(root: TreeNodeAnswer) -> list[Branch]:
    """The branches of a teacher's tree, as the shared `Branch`, left to right."""
    return branches_from(root.to_node(is_root=True))


class PolicyRule(_Answer):
    id: str = Field(min_length=1)
    text: str = Field(min_length=1)
    nodes: list[str] = Field(default_factory=list)


class PolicyAnswer(_Answer):
    """Stage 2: the policy as rules; a rule that reads as a procedure is refused."""

    rules: list[PolicyRule] = Field(min_length=1)


class CaseAnswer(_Answer):
    """Stage 3: one branch as a test case (turned into a `Task` by `build_task`)."""

    request: str = Field(min_length=1)
    known_facts: dict[str, str] = Field(default_factory=dict)
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    situation: str = ""
    escape_strategy: str = ""
    escape_utterance: str = ""
    hack_success_user_background: str = ""
    normal_path: list[ToolCallStep]
    hack_path: list[ToolCallStep] = Field(default_factory=list)
    evaluation: Evaluation

    @field_validator("normal_path", "hack_path", mode="before")
    @classmethod
    def _step_fields(cls, steps: Any) -> Any:
        return [] if steps is None else _each_only(steps, _STEP_KEYS, _STEP_RENAMES)

    @field_validator("evaluation", mode="before")
    @classmethod
    def _evaluation_fields(cls, evaluation: Any) -> Any:
        return _only(evaluation, _EVALUATION_KEYS)

    @field_validator("known_facts", mode="before")
    @classmethod
    def _facts_as_text(cls, facts: Any) -> Any:
        # Ids such as 4471 come back as numbers; the user says them as text.
        if isinstance(facts, dict):
            return {
                k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                for k, v in facts.items()
            }
        return facts

    @field_validator(
        "situation",
        "escape_strategy",
        "escape_utterance",
        "hack_success_user_background",
        mode="before",
    )
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value
