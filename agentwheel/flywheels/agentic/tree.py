"""Behavior trees: a workflow's happy path plus the branches a real conversation can take.

Each node is reached from its parent by an edge condition (the user asks for one of the
workflow's intents, an identifier or fact is missing, a precondition holds or fails, the
request is out of scope, the user pushes back after a refusal) and may run workflow steps. A leaf carries the outcome the agent must reach
(EXECUTE / CLARIFY / REFUSE / TRANSFER) and the kind of task its branch becomes. Trees
are pydantic models, so they serialise to JSON and back unchanged.

Both expanders build this one type. The procedural expander's nodes run the workflow's
steps; a teacher model designs tools of its own (`BehaviorTree.tools`), its nodes run
those and its edges are conditions stated in words (`condition`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentwheel.core.task import BRANCH_KINDS, BranchKind, ToolSpec
from agentwheel.flywheels.agentic.workflow import Precondition

Outcome = Literal["EXECUTE", "CLARIFY", "REFUSE", "TRANSFER"]
OUTCOMES: tuple[Outcome, ...] = ("EXECUTE", "CLARIFY", "REFUSE", "TRANSFER")
EdgeKind = Literal[
    "request",
    "identifier_missing",
    "identifiers_given",
    "out_of_scope",
    "precondition_holds",
    "precondition_fails",
    "user_accepts",
    "user_pushes",
    "condition",
    "intent",
]
TRANSFER_STEP = "@transfer"


def transfer_step(desk: str | None = None) -> str:
    """The step that hands the user over: to the transfer tool, or to a desk's tool."""
    return f"{TRANSFER_STEP}:{desk}" if desk else TRANSFER_STEP


def is_transfer_step(step: str) -> bool:
    return step == TRANSFER_STEP or step.startswith(f"{TRANSFER_STEP}:")


def step_desk(step: str) -> str | None:
    """The desk a transfer step hands to (None: the transfer tool)."""
    return step.partition(":")[2] or None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TreeNode(_Model):
    """A decision point. `steps` are workflow step ids the agent runs on reaching it
    (`@transfer` = the transfer tool), or names of the tree's own `tools` where it has
    them; `hack_steps` (leaves) are what a jailbroken agent runs instead; `ref` names the
    intent, identifier or fact, precondition, out-of-scope kind or push strategy of the
    edge."""

    id: str
    edge: EdgeKind
    label: str
    ref: str = ""
    steps: list[str] = Field(default_factory=list)
    hack_steps: list[str] = Field(default_factory=list)
    outcome: Outcome | None = None
    branch_kind: BranchKind | None = None
    children: list[TreeNode] = Field(default_factory=list)

    @property
    def is_leaf(self) -> bool:
        return not self.children

    @model_validator(mode="after")
    def _leaves_have_outcomes(self) -> TreeNode:
        if self.is_leaf and (self.outcome is None or self.branch_kind is None):
            raise ValueError(f"leaf {self.id!r} needs an outcome and a branch_kind")
        if not self.is_leaf and self.outcome is not None:
            raise ValueError(f"inner node {self.id!r} cannot have an outcome")
        return self


def paths_from(root: TreeNode) -> list[list[TreeNode]]:
    """Every path from `root` to a leaf below it, left to right."""
    out: list[list[TreeNode]] = []

    def walk(node: TreeNode, prefix: list[TreeNode]) -> None:
        path = [*prefix, node]
        if node.is_leaf:
            out.append(path)
        for child in node.children:
            walk(child, path)

    walk(root, [])
    return out


class TreeRule(_Model):
    """A precondition the tree checks, with the step it belongs to."""

    step: str
    precondition: Precondition
    optional: bool = False


class TreeStats(_Model):
    depth: int
    nodes: int
    leaves: int
    branching_factor: float
    max_branching: int
    leaves_by_kind: dict[str, int]
    leaves_by_outcome: dict[str, int]


class BehaviorTree(_Model):
    """A workflow's tree. `tools`, `transfer_tool` and `task` are set by an expander that
    designs the agent's tools itself (a teacher model); empty, the nodes run workflow steps."""

    workflow_id: str
    domain: str
    expander: str
    seed: int
    rules: list[TreeRule]
    root: TreeNode
    tools: list[ToolSpec] = Field(default_factory=list)
    transfer_tool: str | None = None
    task: str = ""

    @model_validator(mode="after")
    def _ids_unique_and_rules_known(self) -> BehaviorTree:
        ids = [n.id for n in self.nodes()]
        duplicates = sorted(i for i, c in Counter(ids).items() if c > 1)
        if duplicates:
            raise ValueError(f"duplicate node ids {duplicates}")
        rule_ids = {r.precondition.id for r in self.rules}
        for node in self.nodes():
            if node.edge.startswith("precondition_") and node.ref not in rule_ids:
                raise ValueError(f"node {node.id!r} checks unknown rule {node.ref!r}")
        if self.tools:
            names = {t.name for t in self.tools}
            for node in self.nodes():
                unknown = [s for s in node.steps + node.hack_steps if s not in names]
                if unknown:
                    raise ValueError(f"node {node.id!r} runs unknown tools {unknown}")
        return self

    def nodes(self) -> Iterator[TreeNode]:
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def leaves(self) -> list[TreeNode]:
        return [n for n in self.nodes() if n.is_leaf]

    def paths(self) -> list[list[TreeNode]]:
        """Every root-to-leaf path, left to right."""
        return paths_from(self.root)

    def rule(self, rule_id: str) -> TreeRule:
        return next(r for r in self.rules if r.precondition.id == rule_id)

    def stats(self) -> TreeStats:
        """Depth (edges on the longest path), mean and max children of inner nodes, leaves."""
        paths = self.paths()
        inner = [n for n in self.nodes() if not n.is_leaf]
        leaves = [p[-1] for p in paths]
        kinds = Counter(leaf.branch_kind for leaf in leaves)
        outcomes = Counter(leaf.outcome for leaf in leaves)
        return TreeStats(
            depth=max(len(p) - 1 for p in paths),
            nodes=sum(1 for _ in self.nodes()),
            leaves=len(leaves),
            branching_factor=round(sum(len(n.children) for n in inner) / len(inner), 3)
            if inner
            else 0.0,
            max_branching=max((len(n.children) for n in inner), default=0),
            leaves_by_kind={k: kinds[k] for k in BRANCH_KINDS if kinds[k]},
            leaves_by_outcome={o: outcomes[o] for o in OUTCOMES if outcomes[o]},
        )
