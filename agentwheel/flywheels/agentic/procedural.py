"""The procedural (no-LLM) expander: a workflow's declared preconditions → a behavior tree.

The tree for a workflow with identifiers I, out-of-scope kinds O and a chain of
preconditions p1 … pn (in happy-path order) is

    root: the user asks
    ├── identifier i missing        → CLARIFY   (one leaf per i ∈ I; then the happy path)
    ├── out of scope o              → TRANSFER  (one leaf per o ∈ O)
    └── identifiers given  [query steps needed for p1]
        ├── p1 fails
        │   ├── user accepts the refusal          → REFUSE (refuse)
        │   └── user pushes with strategy s       → REFUSE (adversarial, one leaf per s)
        └── p1 holds  [query steps needed for p2]
            ├── p2 fails … (as above)
            └── p2 holds … → pn holds [action steps] → EXECUTE (happy)

so a refusal at pk sits below k-1 checks that passed: the agent must check every rule,
not only the first. A rule with `on_fail: transfer` ends in TRANSFER instead (the user
accepts, or pushes and is still handed over); a rule with `insist` phrases gets an
"insist" push (the user insists on their exact violating value). A fact the user must
give (`facts`) gets a "missing" node like an identifier; when a rule checks that fact,
the node holds the checked subtree (ask, then refuse or act). A workflow with further
`intents` gets one node per intent below the root, each with its own clarify and checked
subtrees (ids prefixed with the intent); out-of-scope transfers stay at the root. `extra_conditions` draws that many optional preconditions from the
workflow's pool into the chain (deeper trees, longer policies); `push_strategies` sets
how many adversarial leaves each failing rule gets. With `nest_clarify`, each "identifier
i missing" node gets the whole checked subtree below it instead of one leaf: the user
leaves out i, gives it when asked, and then a rule fails (refuse, adversarial) or all
hold (clarify), so the agent must ask *and* check. Deterministic given the seed.
"""

from __future__ import annotations

import random
from typing import Any

from agentwheel.flywheels.agentic.phrasing import GENERIC_PUSH_STRATEGIES
from agentwheel.flywheels.agentic.seeds import derive_seed
from agentwheel.flywheels.agentic.tree import BehaviorTree, TreeRule, transfer_step
from agentwheel.flywheels.agentic.workflow import Precondition, Step, Workflow


def describe(pre: Precondition, field: str, step: Step | None = None) -> str:
    """`orders.status = 'pending'`-style text of a rule."""
    if pre.related is not None:
        rel = pre.related
        cond = ", ".join(
            [*(f"{c} = {src}" for c, src in rel.match.items())]
            + [f"{c} ≠ {src}" for c, src in rel.differ.items()]
            + [f"{c} = {v!r}" for c, v in rel.where.items()]
            + (
                [f"{rel.within.column} within {rel.within.days} days of {rel.within.of}"]
                if rel.within is not None
                else []
            )
        )
        many = f"at most {rel.at_most}" if rel.at_most else "no"
        return f"{'some' if rel.exist else many} other {rel.table} row with {cond}"
    if pre.any_of:
        entity = step.entity if step is not None else None
        return " or ".join(
            describe(alt, alt.field if "." in alt.field or not entity else f"{entity}.{alt.field}")
            for alt in pre.alternatives()
        )
    symbols = {"eq": "=", "ne": "≠", "lt": "<", "le": "≤", "gt": ">", "ge": "≥"}
    if pre.value_from is not None:
        target = pre.value_from
    elif isinstance(pre.value, list):
        target = "{" + ", ".join(repr(v) for v in pre.value) + "}"
    else:
        target = repr(pre.value)
    op = {"in": "∈", "not_in": "∉"}.get(pre.op) or symbols[pre.op]
    return f"{field} {op} {target}"


class ProceduralExpander:
    """The offline `TreeExpander` (see expand.py)."""

    name = "procedural"

    def __init__(
        self, extra_conditions: int = 0, push_strategies: int = 2, nest_clarify: bool = False
    ):
        if extra_conditions < 0 or push_strategies < 0:
            raise ValueError("extra_conditions and push_strategies must be >= 0")
        self.extra_conditions = extra_conditions
        self.push_strategies = push_strategies
        self.nest_clarify = nest_clarify

    def chain(self, workflow: Workflow, seed: int) -> list[TreeRule]:
        """The rules the tree checks, in happy-path order.

        Optional rules are drawn in a seeded order, so raising `extra_conditions` keeps
        the ones drawn before and adds the next: a tree only ever grows deeper.
        """
        rng = random.Random(derive_seed(seed, workflow.id, "extra_conditions"))
        pool = [p.id for _, p, optional in workflow.all_preconditions() if optional]
        rng.shuffle(pool)
        drawn = set(pool[: self.extra_conditions])
        return [
            TreeRule(step=s.id, precondition=p, optional=optional)
            for s, p, optional in workflow.all_preconditions()
            if not optional or p.id in drawn
        ]

    def strategies(self, workflow: Workflow, pre: Precondition, seed: int) -> list[str]:
        """Push-back strategies for a failing rule (stable per rule, whatever the chain)."""
        rng = random.Random(derive_seed(seed, workflow.id, pre.id, "push"))
        # Rule-specific pushes (insisting on the value, a false claim) are the sharpest;
        # generic ones fill the rest.
        first = ["insist"] if pre.insist else []
        first += ["false_claim"] if pre.false_claims else []
        rest = list(GENERIC_PUSH_STRATEGIES)
        rng.shuffle(rest)
        return (first + rest)[: self.push_strategies]

    def expand(self, workflow: Workflow, seed: int) -> BehaviorTree:
        rules = self.chain(workflow, seed)
        children = self.clarify_nodes(workflow, rules, seed, "")
        for oos in workflow.out_of_scope:
            children.append(
                {
                    "id": f"transfer.{oos.kind}",
                    "edge": "out_of_scope",
                    "ref": oos.kind,
                    "label": f"out of scope: {oos.rule}",
                    "steps": [transfer_step(oos.desk)],
                    "outcome": "TRANSFER",
                    "branch_kind": "transfer",
                }
            )
        given = self.checked_subtree(workflow, rules, seed, "")
        given.update(
            id="given",
            edge="identifiers_given",
            label="the user gives " + ", ".join(i.spoken for i in workflow.identifiers),
        )
        children.append(given)
        actions = [workflow.phrasing.action]
        for intent, view in workflow.views()[1:]:
            view_rules = self.chain(view, seed)
            known = {r.precondition.id for r in rules}
            rules += [r for r in view_rules if r.precondition.id not in known]
            view_given = self.checked_subtree(view, view_rules, seed, f"{intent}.")
            view_given.update(
                id=f"{intent}.given",
                edge="identifiers_given",
                label="the user gives " + ", ".join(i.spoken for i in view.identifiers),
            )
            children.append(
                {
                    "id": intent,
                    "edge": "intent",
                    "ref": intent,
                    "label": f"the user asks to {view.phrasing.action}",
                    "children": [
                        *self.clarify_nodes(view, view_rules, seed, f"{intent}."),
                        view_given,
                    ],
                }
            )
            actions.append(view.phrasing.action)
        root = {
            "id": "root",
            "edge": "request",
            "label": f"the user asks to {' or '.join(actions)}",
            "children": children,
        }
        return BehaviorTree.model_validate(
            {
                "workflow_id": workflow.id,
                "domain": workflow.domain,
                "expander": self.name,
                "seed": seed,
                "rules": [r.model_dump() for r in rules],
                "root": root,
            }
        )

    def clarify_nodes(
        self, workflow: Workflow, rules: list[TreeRule], seed: int, prefix: str
    ) -> list[dict[str, Any]]:
        """One "missing" node per identifier and per fact the steps need. A fact that a
        rule checks gets the checked subtree below it, as every one does with
        `nest_clarify`: the agent asks, then refuses, transfers or acts."""
        checked = {
            workflow.resolve(alt.field, workflow.step(r.step))
            for r in rules
            for alt in r.precondition.alternatives()
        }
        nodes: list[dict[str, Any]] = []
        facts = workflow.needed_facts()
        for ident in [*workflow.identifiers, *facts]:
            node_id = f"{prefix}clarify.{ident.name}"
            clarify: dict[str, Any] = {
                "id": node_id,
                "edge": "identifier_missing",
                "ref": ident.name,
                "label": f"the user has not given their {ident.spoken}",
            }
            if self.nest_clarify or (ident in facts and ident.field in checked):
                clarify.update(self.checked_subtree(workflow, rules, seed, f"{node_id}."))
                _mark_happy_as_clarify(clarify)
            else:
                clarify.update(
                    steps=[s.id for s in workflow.steps], outcome="CLARIFY", branch_kind="clarify"
                )
            nodes.append(clarify)
        return nodes

    def checked_subtree(
        self, workflow: Workflow, rules: list[TreeRule], seed: int, prefix: str
    ) -> dict[str, Any]:
        """The chain of checks once the identifiers are known: the content (steps,
        children, or the happy outcome) of the node the chain hangs from; node ids get
        `prefix`, so a nested copy keeps ids unique."""
        happy = [s.id for s in workflow.steps]
        top: dict[str, Any] = {}
        ran: list[str] = []
        cursor = top
        for rule in rules:
            step = workflow.step(rule.step)
            needed = _steps_through(workflow, step, ran)
            cursor["steps"] = cursor.get("steps", []) + needed
            ran += needed
            pre = rule.precondition
            field = workflow.resolve(pre.field, step)
            remaining = [s for s in happy if s not in ran]
            fails = {
                "id": f"{prefix}fail.{pre.id}",
                "edge": "precondition_fails",
                "ref": pre.id,
                "label": f"not ({describe(pre, field, step)})",
                "children": self.failure_leaves(workflow, pre, seed, prefix, remaining),
            }
            holds: dict[str, Any] = {
                "id": f"{prefix}pass.{pre.id}",
                "edge": "precondition_holds",
                "ref": pre.id,
                "label": describe(pre, field, step),
            }
            cursor["children"] = [fails, holds]
            cursor = holds
        cursor["steps"] = cursor.get("steps", []) + [s for s in happy if s not in ran]
        cursor["outcome"] = "EXECUTE"
        cursor["branch_kind"] = "happy"
        return top

    def failure_leaves(
        self, workflow: Workflow, pre: Precondition, seed: int, prefix: str, remaining: list[str]
    ) -> list[dict[str, Any]]:
        """Below a failing rule: the user accepts the outcome, or pushes with each strategy.
        The outcome is a refusal, or the hand-off the rule asks for (`on_fail: transfer`)."""
        transfer = pre.on_fail == "transfer"
        outcome = "TRANSFER" if transfer else "REFUSE"
        steps = [transfer_step(pre.desk)] if transfer else []
        verb = "hands the user over" if transfer else "refuses"
        accept: dict[str, Any] = {
            "id": f"{prefix}{'handoff' if transfer else 'refuse'}.{pre.id}",
            "edge": "user_accepts",
            "label": f"the agent {verb}; the user asks once more, then accepts",
            "outcome": outcome,
            "branch_kind": "transfer" if transfer else "refuse",
            "hack_steps": remaining,
        }
        pushes: list[dict[str, Any]] = [
            {
                "id": f"{prefix}adversarial.{pre.id}.{strategy}",
                "edge": "user_pushes",
                "ref": strategy,
                "label": f"the agent {verb}; the user pushes back ({strategy})",
                "outcome": outcome,
                "branch_kind": "adversarial",
                "hack_steps": remaining,
            }
            for strategy in self.strategies(workflow, pre, seed)
        ]
        for leaf in [accept, *pushes]:
            if steps:
                leaf["steps"] = list(steps)
        return [accept, *pushes]


def _mark_happy_as_clarify(node: dict[str, Any]) -> None:
    """Relabel the EXECUTE leaf below a nested clarify node (all rules hold)."""
    while "children" in node:
        node = node["children"][-1]
    node.update(outcome="CLARIFY", branch_kind="clarify")


def _steps_through(workflow: Workflow, step: Step, ran: list[str]) -> list[str]:
    """Steps up to and including `step` that have not run yet."""
    ids = [s.id for s in workflow.steps]
    return [s for s in ids[: ids.index(step.id) + 1] if s not in ran]
