"""Branches of a behavior tree: enumerate them, sample tasks from them under a budget
(balanced over branch kinds), and drop tasks whose requests are near-duplicates."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from agentwheel.core.rejection import Rejection
from agentwheel.core.task import BRANCH_KINDS, BranchKind, Task
from agentwheel.flywheels.agentic.tree import BehaviorTree, Outcome, TreeNode, paths_from


class Branch(BaseModel):
    """One root-to-leaf path, flattened into what instantiating a task needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: BranchKind
    outcome: Outcome
    node_ids: list[str]
    steps: list[str]
    hack_steps: list[str]
    held_rules: list[str]
    failed_rule: str | None = None
    missing_identifier: str | None = None
    out_of_scope: str | None = None
    push_strategy: str | None = None
    intent: str | None = None

    @property
    def depth(self) -> int:
        return len(self.node_ids) - 1


def enumerate_branches(tree: BehaviorTree) -> list[Branch]:
    """Every root-to-leaf path of the tree as a `Branch`, left to right."""
    return branches_from(tree.root)


def branches_from(root: TreeNode) -> list[Branch]:
    """Every path from `root` to a leaf as a `Branch`, left to right."""
    branches = []
    for path in paths_from(root):
        leaf = path[-1]
        assert leaf.outcome is not None and leaf.branch_kind is not None
        info: dict[str, str | None] = {
            "failed_rule": None,
            "missing_identifier": None,
            "out_of_scope": None,
            "push_strategy": None,
            "intent": None,
        }
        held: list[str] = []
        for node in path:
            if node.edge == "precondition_holds":
                held.append(node.ref)
            elif node.edge == "precondition_fails":
                info["failed_rule"] = node.ref
            elif node.edge == "identifier_missing":
                info["missing_identifier"] = node.ref
            elif node.edge == "out_of_scope":
                info["out_of_scope"] = node.ref
            elif node.edge == "user_pushes":
                info["push_strategy"] = node.ref
            elif node.edge == "intent":
                info["intent"] = node.ref
        branches.append(
            Branch(
                id=leaf.id,
                kind=leaf.branch_kind,
                outcome=leaf.outcome,
                node_ids=[n.id for n in path],
                steps=[s for n in path for s in n.steps],
                hack_steps=list(leaf.hack_steps),
                held_rules=held,
                **info,
            )
        )
    return branches


# ---- near-duplicate requests --------------------------------------------------------

_EMAIL = re.compile(r"\S+@\S+")
_TOKEN = re.compile(r"[a-z0-9$']+")


def request_tokens(text: str) -> frozenset[str]:
    """Normalised token set: lower case, e-mails and tokens holding digits masked, so two
    requests that differ only in ids or amounts count as the same wording."""
    text = _EMAIL.sub(" <email> ", text.lower())
    tokens = []
    for token in _TOKEN.findall(text):
        tokens.append("<num>" if any(c.isdigit() for c in token) else token)
    if "<email>" in text:
        tokens.append("<email>")
    return frozenset(tokens)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class NearDuplicateFilter:
    """Accepts a text unless an accepted one has token-set Jaccard ≥ `threshold` with it."""

    threshold: float = 0.8
    kept: list[frozenset[str]] = field(default_factory=list)

    def is_near_duplicate(self, text: str) -> bool:
        tokens = request_tokens(text)
        return any(jaccard(tokens, other) >= self.threshold for other in self.kept)

    def add(self, text: str) -> bool:
        """Keep `text` (True) unless it is a near-duplicate of one already kept (False)."""
        if self.is_near_duplicate(text):
            return False
        self.kept.append(request_tokens(text))
        return True


def drop_near_duplicates(
    tasks: Sequence[Task], threshold: float = 0.8
) -> tuple[list[Task], list[Task]]:
    """(kept, dropped): first-come wins among tasks with near-duplicate requests."""
    kept_filter = NearDuplicateFilter(threshold)
    kept: list[Task] = []
    dropped: list[Task] = []
    for task in tasks:
        (kept if kept_filter.add(task.user.request) else dropped).append(task)
    return kept, dropped


# ---- sampling under a budget ----------------------------------------------------------


@dataclass
class SampleReport:
    attempts: int = 0
    near_duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)


def sample_tasks(
    branches: Sequence[Branch],
    budget: int,
    make_task: Callable[[Branch, int], Task | Rejection],
    seed: int,
    near_duplicate_threshold: float = 0.8,
    attempts_per_task: int = 4,
    prefer: Callable[[Branch], bool] | None = None,
) -> tuple[list[Task], SampleReport]:
    """Up to `budget` tasks, balanced over branch kinds.

    Each turn goes to the kind with the fewest accepted tasks; within a kind, branches
    are visited round-robin (in a seeded order) and instance numbers grow, so repeated
    branches get fresh data and phrasing. A rejected or near-duplicate candidate costs an
    attempt; a kind stops after `attempts_per_task × budget` attempts. With `prefer`, a
    kind that has preferred branches samples only those (the flywheel step prefers the
    branches its deeper tree added).
    """
    rng = random.Random(seed)
    by_kind: dict[BranchKind, list[Branch]] = {}
    for branch in branches:
        by_kind.setdefault(branch.kind, []).append(branch)
    if prefer is not None:
        for kind, pool in by_kind.items():
            by_kind[kind] = [b for b in pool if prefer(b)] or pool
    kinds = [k for k in BRANCH_KINDS if k in by_kind]
    for kind in kinds:
        rng.shuffle(by_kind[kind])
    turns = dict.fromkeys(kinds, 0)
    accepted = dict.fromkeys(kinds, 0)
    active = list(kinds)
    limit = max(1, attempts_per_task * budget)
    dedup = NearDuplicateFilter(near_duplicate_threshold)
    report = SampleReport()
    tasks: list[Task] = []
    while active and len(tasks) < budget:
        kind = min(active, key=lambda k: (accepted[k], kinds.index(k)))
        pool = by_kind[kind]
        turn = turns[kind]
        turns[kind] += 1
        if turns[kind] >= limit:
            active.remove(kind)
        branch, instance = pool[turn % len(pool)], turn // len(pool)
        report.attempts += 1
        result = make_task(branch, instance)
        if isinstance(result, Rejection):
            report.rejections.append(result)
            continue
        if not dedup.add(result.user.request):
            report.near_duplicates += 1
            continue
        tasks.append(result)
        accepted[kind] += 1
    report.by_kind = {k: v for k, v in accepted.items() if v}
    return tasks, report
