"""The teacher's prompts: templates from `flywheels/agentic/prompts/`, modelled on the
paper's synthesis prompts, and the text that fills them (a workflow, tools, a tree, a
branch, a policy)."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from string import Template

from agentwheel.core.resources import bundled
from agentwheel.core.task import ToolSpec
from agentwheel.flywheels.agentic.branches import Branch
from agentwheel.flywheels.agentic.generator_values import describe_values
from agentwheel.flywheels.agentic.llm_expander.schemas import PolicyRule
from agentwheel.flywheels.agentic.tree import BehaviorTree, TreeNode
from agentwheel.flywheels.agentic.workflow import ColumnGen, Step, Workflow


@functools.cache
def load_prompt(name: str) -> Template:
    """A prompt template from `prompts/<name>.txt` (`$placeholders`, substituted strictly)."""
    path = bundled("flywheels", "agentic", "prompts", f"{name}.txt")
    return Template(path.read_text(encoding="utf-8"))


def tree_prompt(workflow: Workflow, workflow_text: str, max_branches: int) -> str:
    """Stage 1: workflow → task, tools and behavior tree."""
    return load_prompt("expand_workflow").substitute(
        workflow=workflow_text,
        transfer_tool=workflow.transfer.tool,
        max_branches=max_branches,
    )


def policy_prompt(workflow_text: str, tree: BehaviorTree) -> str:
    """Stage 2: workflow + tree → the agent's policy."""
    return load_prompt("write_policy").substitute(
        workflow=workflow_text,
        task=tree.task,
        tools=render_tools(tree.tools),
        tree=render_tree(tree.root),
    )


def case_prompt(
    workflow_text: str, tree: BehaviorTree, rules: Sequence[PolicyRule], branch: Branch
) -> str:
    """Stage 3: one branch → a test case, stating the policy `rules`."""
    return load_prompt("branch_to_task").substitute(
        workflow=workflow_text,
        task=tree.task,
        tools=render_tools(tree.tools),
        policy=policy_text(rules),
        branch=render_branch(tree, branch),
    )


def fix_prompt(problems: str) -> str:
    """The follow-up turn that sends an unusable answer's problems back."""
    return load_prompt("fix_answer").substitute(problems=problems)


def _generator_text(gen: ColumnGen | None) -> str:
    return "filled in by the tools" if gen is None else describe_values(gen)


def render_workflow(workflow: Workflow) -> str:
    """A workflow as prompt text: background, steps with tools and the conditions they rely
    on, identifiers, what goes to a human, and the shape of the records."""
    lines = [
        f"Workflow id: {workflow.id}",
        f"Title: {workflow.title}",
        f"Domain: {workflow.domain}",
        f"What the user wants: to {workflow.phrasing.action}",
        "",
        "Background:",
        workflow.background.strip(),
        "",
        "Steps of the happy path:",
    ]
    lines += _step_lines(workflow.steps)
    lines += ["", "What the user must give:"]
    lines += [f"- {i.spoken} (`{i.name}`)" for i in workflow.identifiers]
    transfer_id = next(
        (i.spoken for i in workflow.identifiers if i.name == workflow.transfer.identifier),
        workflow.transfer.identifier,
    )
    lines += [
        "",
        f"Handed to a human with `{workflow.transfer.tool}` (passing the {transfer_id}):",
    ]
    lines += [f"- {o.rule}" for o in workflow.out_of_scope]
    if workflow.intents:
        lines += [
            "",
            "Further requests the same agent serves (each its own happy path; the same "
            "records, identifiers, hand-offs and policy):",
        ]
        for intent in workflow.intents:
            lines.append(f"- to {intent.phrasing.action} (intent `{intent.id}`):")
            lines += [f"  {line}" for line in _step_lines(intent.steps)]
    if workflow.extra_tools:
        lines += ["", "Other tools the agent has:"]
        lines += [f"- `{t.name}` ({t.kind}) — {t.description}" for t in workflow.extra_tools]
    lines += ["", "Records:"]
    for name, table in workflow.tables.items():
        columns = "; ".join(f"{c}: {_generator_text(g)}" for c, g in table.columns.items())
        lines.append(f"- {name}: {columns}")
    if workflow.request_fields:
        details = "; ".join(
            f"{n}: {_generator_text(g)}" for n, g in workflow.request_fields.items()
        )
        lines.append(f"- details the user states: {details}")
    return "\n".join(lines)


def _step_lines(steps: Sequence[Step]) -> list[str]:
    """A happy path as numbered steps: tool, kind, description, parameters, and the rules
    each step relies on or may check."""
    lines = []
    for i, step in enumerate(steps, 1):
        spec = step.tool.spec()
        params = ", ".join(
            f"{name} ({p.get('type')}" + (f": one of {p['enum']}" if "enum" in p else "") + ")"
            for name, p in spec.properties.items()
        )
        label = "" if step.id == spec.name else f"{step.id}: "
        lines.append(
            f"{i}. {label}`{spec.name}` ({spec.kind}) — {spec.description} "
            f"Parameters: {params or 'none'}."
        )
        lines += [f"   Relies on: {pre.rule.strip()}" for pre in step.preconditions]
        lines += [f"   May also check: {pre.rule.strip()}" for pre in step.optional_preconditions]
    return lines


def render_tools(tools: Sequence[ToolSpec]) -> str:
    """One tool per line, as compact JSON."""
    return "\n".join(json.dumps(t.model_dump(), ensure_ascii=False) for t in tools)


def render_tree(node: TreeNode, depth: int = 0) -> str:
    """An indented outline: `[id] condition (tools: ...) -> OUTCOME / kind`."""
    tools = f" (tools: {', '.join(node.steps)})" if node.steps else ""
    leaf = f" -> {node.outcome} / {node.branch_kind}" if node.is_leaf else ""
    lines = [f"{'  ' * depth}- [{node.id}] {node.label}{tools}{leaf}"]
    lines += [render_tree(child, depth + 1) for child in node.children]
    return "\n".join(lines)


def render_branch(tree: BehaviorTree, branch: Branch) -> str:
    """The branch's id, kind and outcome, and its path from the root with the tools called."""
    nodes = {n.id: n for n in tree.nodes()}
    lines = [f"Branch id: {branch.id}", f"Kind: {branch.kind}, outcome: {branch.outcome}", ""]
    lines.append("Path from the root:")
    for i, node_id in enumerate(branch.node_ids, 1):
        node = nodes[node_id]
        tools = f" The agent calls: {', '.join(node.steps)}." if node.steps else ""
        lines.append(f"{i}. [{node.id}] {node.label}{tools}")
    lines.append(f"Outcome: {branch.outcome}")
    return "\n".join(lines)


def policy_text(rules: Sequence[PolicyRule]) -> str:
    return "\n".join(f"- {r.text.strip()}" for r in rules)
