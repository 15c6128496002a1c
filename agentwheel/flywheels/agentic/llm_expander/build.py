"""A teacher's test case for one branch → a mock back-end `Task` (`sqlite=None`), stating
the policy rules its scope allows, with lineage back to the workflow and branch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import ValidationError

from agentwheel.core.task import Lineage, Task, UserSide
from agentwheel.flywheels.agentic.branches import Branch
from agentwheel.flywheels.agentic.llm_expander.checks import case_problems
from agentwheel.flywheels.agentic.llm_expander.extract import (
    AnswerError,
    describe_validation_error,
)
from agentwheel.flywheels.agentic.llm_expander.prompts import policy_text
from agentwheel.flywheels.agentic.llm_expander.schemas import (
    CaseAnswer,
    PolicyAnswer,
    PolicyRule,
)
from agentwheel.flywheels.agentic.tree import BehaviorTree
from agentwheel.flywheels.agentic.workflow import Workflow

OPERATOR = "llm"
PolicyScope = Literal["tree", "branch"]


def task_id(workflow_id: str, branch_id: str, round: int) -> str:
    return f"{OPERATOR}-r{round}.{workflow_id}.{branch_id}"


def decision_nodes(tree: BehaviorTree, branch: Branch) -> set[str]:
    """Ids of the alternatives at every decision the branch passes (its nodes and their siblings)."""
    nodes = {n.id: n for n in tree.nodes()}
    ids = {branch.node_ids[0]}
    for parent in branch.node_ids[:-1]:
        ids.update(child.id for child in nodes[parent].children)
    return ids


def rules_for_branch(
    policy: PolicyAnswer, tree: BehaviorTree, branch: Branch, scope: PolicyScope
) -> list[PolicyRule]:
    """The rules a branch's task states. `tree`: all of them, because listing only the rule a
    branch fails would give the answer away. `branch`: the rules that decide some decision
    the branch passes (and rules tied to no known node)."""
    if scope == "tree":
        return list(policy.rules)
    known = {n.id for n in tree.nodes()}
    relevant = decision_nodes(tree, branch)
    return [r for r in policy.rules if not (set(r.nodes) & known) or set(r.nodes) & relevant]


def instruction_for(workflow: Workflow, rules: Sequence[PolicyRule]) -> str:
    """The agent's system text: the workflow's background, then the policy."""
    return f"{workflow.background.strip()}\n\nPolicy:\n{policy_text(rules)}"


def build_task(
    workflow: Workflow,
    tree: BehaviorTree,
    policy: PolicyAnswer,
    branch: Branch,
    case: CaseAnswer,
    round: int = 0,
    policy_scope: PolicyScope = "tree",
) -> Task:
    """A test case as a mock back-end `Task`; AnswerError lists what the teacher must fix."""
    problems = case_problems(case, tree, branch)
    if problems:
        raise AnswerError("\n".join(f"- {p}" for p in problems))
    rules = rules_for_branch(policy, tree, branch, policy_scope)
    evaluation = case.evaluation.model_copy(
        update={"transfer_tool": tree.transfer_tool or case.evaluation.transfer_tool}
    )
    try:
        return Task(
            id=task_id(workflow.id, branch.id, round),
            domain=workflow.domain,
            branch_kind=branch.kind,
            instruction=instruction_for(workflow, rules),
            tools=list(tree.tools),
            user=UserSide(
                request=case.request,
                known_facts=case.known_facts,
                # Aliases of facts the user does not know say nothing; drop, don't bounce.
                aliases={k: v for k, v in case.aliases.items() if k in case.known_facts},
                situation=case.situation,
                escape_strategy=case.escape_strategy,
                escape_utterance=case.escape_utterance,
                hack_success_user_background=case.hack_success_user_background,
            ),
            normal_path=case.normal_path,
            hack_path=case.hack_path,
            evaluation=evaluation,
            sqlite=None,
            lineage=Lineage(
                source_workflow=workflow.id, branch=branch.id, round=round, operator=OPERATOR
            ),
        )
    except ValidationError as exc:
        raise AnswerError(describe_validation_error(exc)) from None
