"""The LLM expander: a teacher model turns workflows into behavior trees, policies and tasks.

Three stages, modelled on the paper's synthesis prompts (the templates are in `prompts/`):

- `tree`   — workflow → task description, 3–5 tools and a JSON behavior tree (one request
  per workflow);
- `policy` — workflow + tree → the agent's policy, rules that state conditions, never
  procedures (one request per workflow);
- `task`   — one root-to-leaf branch → a test case: request, the user's facts, escape
  strategy, normal and hack paths with expected outputs, evaluation (one request per
  leaf). The answer becomes a mock back-end `Task` (`sqlite=None`).

Every answer is parsed (code fences and prose around the JSON are tolerated) and
validated; an unusable answer goes back to the teacher with the problems in a follow-up
turn, at most `max_repairs` times, then the item is a rejection with its stage and reason.
Produced tasks then pass the validation gate (`validate_tasks`), whose rejections are
counted too.

Items are pipelined: each goes to the teacher as soon as the answer it depends on is
parsed (a workflow's policy request right after its tree, its branches right after its
policy), so no stage waits for a whole wave of another. For a remote teacher (no local
renderer, e.g. `OpenAIChatModel`) several small `teacher.chat` calls are in flight at once
from worker threads, and the teacher's own concurrency bound shares them out; a local
teacher gets one batch of up to `batch_size` at a time. While calls are in flight, the
answers that came back are parsed, gated and written. Each stage appends to its own JSONL
file in `out_dir`, one flushed line per item, so a rerun skips what is finished (keyed by
workflow id and branch id) and a killed run loses at most the requests in flight. A
`ModelConfigError` (bad key, unknown model) stops the run: no new requests go out, the
answers of those in flight are still kept, and the manifest is written; per-request
failures are counted and retried by the next run.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import logging
import os
import queue
import re
import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import IO, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.messages import ChatRequest, Completion, Message, SamplingParams
from agentwheel.core.task import (
    BranchKind,
    Evaluation,
    Lineage,
    Signal,
    Task,
    ToolCallStep,
    ToolSpec,
    UserSide,
)
from agentwheel.flywheels.agentic.tree import Outcome
from agentwheel.flywheels.agentic.validate import validate_tasks
from agentwheel.flywheels.agentic.workflow import ColumnGen, Workflow
from agentwheel.flywheels.agentic.workflow_loader import load_workflows
from agentwheel.llm.openai_compat import ModelConfigError
from agentwheel.llm.tool_calls import validate_arguments
from agentwheel.llm.types import ChatModel

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
OPERATOR = "llm"
Stage = Literal["tree", "policy", "task"]
STAGES: tuple[Stage, ...] = ("tree", "policy", "task")
RejectionStage = Literal["load", "tree", "policy", "task", "gate"]
# `invalid_answer`: still unusable after the repair turns; `request_failed`: the teacher
# call itself failed after the client's retries (retried by the next run); gate reasons
# are those of `validate_tasks`.
RejectionReason = str

TREES_FILE = "trees.jsonl"
POLICIES_FILE = "policies.jsonl"
TASKS_FILE = "tasks.jsonl"
REJECTIONS_FILE = "rejections.jsonl"
MANIFEST_FILE = "manifest.json"
SYNC_INTERVAL_S = 1.0

SIGNALS_FOR_OUTCOME: dict[str, list[Signal]] = {
    "EXECUTE": [],
    "CLARIFY": ["clarification"],
    "REFUSE": ["refusal"],
    "TRANSFER": ["transfer"],
}
OUTCOME_FOR_KIND: dict[str, str] = {
    "happy": "EXECUTE",
    "clarify": "CLARIFY",
    "refuse": "REFUSE",
    "transfer": "TRANSFER",
}
_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s+|$)")
# Words that give a test away; plain words a customer may use ("branch", "hacked") are not here.
_TEST_LANGUAGE = re.compile(
    r"\b(test(?:ing)? case|this is a test|hack[_ ]path|normal[_ ]path|jailbr\w*|"
    r"policy violation|behaviou?r tree|edge case|scenario|simulat\w*)\b",
    re.IGNORECASE,
)
_PROCEDURE = re.compile(
    r"\bstep\s*\d|\b(?:first|then|next|afterwards)\b[^.;]*\b(?:call|invoke|run|use)\b",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)


# ---- prompts ---------------------------------------------------------------------------


@functools.cache
def load_prompt(name: str) -> Template:
    """A prompt template from `prompts/<name>.txt` (`$placeholders`, substituted strictly)."""
    return Template((PROMPTS_DIR / f"{name}.txt").read_text(encoding="utf-8"))


# ---- what the teacher answers -----------------------------------------------------------


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


_TOOL_KEYS = ("name", "description", "parameters", "kind")
_STEP_KEYS = ("tool", "arguments", "expected_output")
_STEP_RENAMES = {"tool_name": "tool", "name": "tool", "input": "arguments", "args": "arguments"}
_EVALUATION_KEYS = ("required_signals", "required_outputs", "description")


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
        problems: list[str] = []
        names = [t.name for t in self.tools]
        kinds = {t.kind for t in self.tools}
        if len(set(names)) != len(names):
            problems.append(f"tool names repeat: {names}")
        if kinds != {"query", "action"}:
            problems.append("tools need at least one 'query' and one 'action' tool")
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
        max_branches = (info.context or {}).get("max_branches") if info is not None else None
        if max_branches is not None and len(leaves) > max_branches:
            problems.append(f"{len(leaves)} leaves; use at most {max_branches}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


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


# ---- branches --------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeBranch:
    """One root-to-leaf path of a teacher tree. Its id is the leaf's id."""

    id: str
    kind: BranchKind
    outcome: Outcome
    path: tuple[TreeNodeAnswer, ...]


def tree_branches(root: TreeNodeAnswer) -> list[TreeBranch]:
    """Every root-to-leaf path, left to right."""
    out: list[TreeBranch] = []

    def walk(node: TreeNodeAnswer, prefix: tuple[TreeNodeAnswer, ...]) -> None:
        path = (*prefix, node)
        if not node.children:
            assert node.outcome is not None and node.branch_kind is not None
            out.append(TreeBranch(node.id, node.branch_kind, node.outcome, path))
        for child in node.children:
            walk(child, path)

    walk(root, ())
    return out


def decision_nodes(branch: TreeBranch) -> set[str]:
    """Ids of the alternatives at every decision the branch passes (its nodes and their siblings)."""
    ids = {branch.path[0].id}
    for parent in branch.path[:-1]:
        ids.update(child.id for child in parent.children)
    return ids


# ---- parsing ---------------------------------------------------------------------------


class AnswerError(ValueError):
    """A teacher answer that cannot be used; the message is what the teacher is told."""


def extract_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a teacher's answer: from a fenced block if there is one, else the
    largest object anywhere in the text. Raises AnswerError saying what is wrong."""
    fenced = [m.group(1) for m in _FENCE.finditer(text)]
    error: json.JSONDecodeError | None = None
    error_reach = -1
    for chunk in [*fenced, text]:
        best, size, chunk_error, reach = _largest_object(chunk)
        # A broken parse that ran further than the best object was the intended answer,
        # and the object found is only a piece of it: report the syntax error instead.
        if best is not None and size >= reach:
            return best
        if chunk_error is not None and reach > error_reach:
            error, error_reach = chunk_error, reach
    if error is not None:
        where = "the ```json block" if fenced else "the JSON object"
        raise AnswerError(
            f"{where} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        )
    raise AnswerError("no JSON object found in the answer")


def _largest_object(
    chunk: str,
) -> tuple[dict[str, Any] | None, int, json.JSONDecodeError | None, int]:
    """(largest decodable object, its length, the failed parse that got furthest, how far)."""
    decoder = json.JSONDecoder()
    best: dict[str, Any] | None = None
    size = error_reach = -1
    error: json.JSONDecodeError | None = None
    position = chunk.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(chunk, position)
        except json.JSONDecodeError as exc:
            if exc.pos - position > error_reach:
                error, error_reach = exc, exc.pos - position
            position = chunk.find("{", position + 1)
            continue
        if isinstance(value, dict) and end - position > size:
            best, size = value, end - position
        # Objects nested inside a decoded one are parts of it, not candidates.
        position = chunk.find("{", end)
    return best, size, error, error_reach


def describe_validation_error(exc: ValidationError, limit: int = 8) -> str:
    """`field.path: message` lines, as the teacher should read them."""
    lines = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        lines.append(f"- {where}: {error['msg'].removeprefix('Value error, ')}")
    if exc.error_count() > limit:
        lines.append(f"- ... and {exc.error_count() - limit} more")
    return "\n".join(lines)


AnswerT = TypeVar("AnswerT", bound=BaseModel)


def parse_answer(model: type[AnswerT], text: str, context: dict[str, Any] | None = None) -> AnswerT:
    """Extract and validate one answer; AnswerError carries the problems."""
    data = extract_json_object(text)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise AnswerError(describe_validation_error(exc)) from None


# ---- rendering for the prompts ---------------------------------------------------------


def _generator_text(gen: ColumnGen | None) -> str:
    if gen is None:
        return "filled in by the tools"
    if gen.pattern is not None:
        return f"like {gen.pattern} (# = digit, ? = letter)"
    if gen.choice is not None:
        return "one of " + ", ".join(str(c) for c in gen.choice)
    if gen.int_range is not None:
        return f"a whole number from {gen.int_range[0]} to {gen.int_range[1]}"
    if gen.money is not None:
        return f"an amount from {gen.money[0]:g} to {gen.money[1]:g}"
    if gen.date is not None:
        return f"a date from {gen.date[0]} to {gen.date[1]}"
    if gen.ref is not None:
        return f"refers to {gen.ref}"
    if gen.email_of is not None or gen.username_of is not None:
        return "derived from the person's name"
    if gen.faker is not None:
        return f"a realistic {gen.faker.replace('_', ' ')}"
    return f"always {gen.value!r}"


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
    for i, step in enumerate(workflow.steps, 1):
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
        for pre in step.preconditions:
            lines.append(f"   Relies on: {pre.rule.strip()}")
        for pre in step.optional_preconditions:
            lines.append(f"   May also check: {pre.rule.strip()}")
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


def render_tools(tools: Sequence[ToolSpec]) -> str:
    """One tool per line, as compact JSON."""
    return "\n".join(json.dumps(t.model_dump(), ensure_ascii=False) for t in tools)


def render_tree(node: TreeNodeAnswer, depth: int = 0) -> str:
    """An indented outline: `[id] condition (tools: ...) -> OUTCOME / kind`."""
    tools = f" (tools: {', '.join(node.tools)})" if node.tools else ""
    leaf = f" -> {node.outcome} / {node.branch_kind}" if not node.children else ""
    lines = [f"{'  ' * depth}- [{node.id}] {node.condition}{tools}{leaf}"]
    lines += [render_tree(child, depth + 1) for child in node.children]
    return "\n".join(lines)


def render_branch(branch: TreeBranch) -> str:
    lines = [f"Branch id: {branch.id}", f"Kind: {branch.kind}, outcome: {branch.outcome}", ""]
    lines.append("Path from the root:")
    for i, node in enumerate(branch.path, 1):
        tools = f" The agent calls: {', '.join(node.tools)}." if node.tools else ""
        lines.append(f"{i}. [{node.id}] {node.condition}{tools}")
    lines.append(f"Outcome: {branch.outcome}")
    return "\n".join(lines)


def policy_text(rules: Sequence[PolicyRule]) -> str:
    return "\n".join(f"- {r.text.strip()}" for r in rules)


def instruction_for(workflow: Workflow, rules: Sequence[PolicyRule]) -> str:
    """The agent's system text: the workflow's background, then the policy."""
    return f"{workflow.background.strip()}\n\nPolicy:\n{policy_text(rules)}"


def rules_for_branch(
    policy: PolicyAnswer, tree: TreeAnswer, branch: TreeBranch, scope: Literal["tree", "branch"]
) -> list[PolicyRule]:
    """The rules a branch's task states. `tree`: all of them, because listing only the rule a
    branch fails would give the answer away. `branch`: the rules that decide some decision
    the branch passes (and rules tied to no known node)."""
    if scope == "tree":
        return list(policy.rules)
    known = {n.id for n in tree.behavior_tree.walk()}
    relevant = decision_nodes(branch)
    return [r for r in policy.rules if not (set(r.nodes) & known) or set(r.nodes) & relevant]


# ---- checks that turn answers into errors the teacher can fix --------------------------


def policy_problems(policy: PolicyAnswer, tree: TreeAnswer) -> list[str]:
    problems = []
    tool_names = [t.name for t in tree.tools]
    known = {n.id for n in tree.behavior_tree.walk()}
    for rule in policy.rules:
        named = [name for name in tool_names if re.search(rf"\b{re.escape(name)}\b", rule.text)]
        if len(named) > 1 or _PROCEDURE.search(rule.text):
            problems.append(
                f"rule {rule.id!r} reads as a procedure; state the condition, not the calls"
            )
        unknown = [n for n in rule.nodes if n not in known]
        if unknown:
            problems.append(f"rule {rule.id!r} names unknown nodes {unknown}")
    return problems


def request_problems(request: str) -> list[str]:
    problems = []
    sentences = [s for s in _SENTENCE_END.split(request.strip()) if s.strip()]
    # A greeting before the sentence is natural ("Hi! Could you ..."), so allow two.
    if len(sentences) > 2:
        problems.append(f"request: write one natural sentence, not {len(sentences)}")
    found = _TEST_LANGUAGE.search(request)
    if found:
        problems.append(f"request: a real customer would not say {found.group(0)!r}")
    return problems


def _path_problems(
    name: str, steps: Sequence[ToolCallStep], tools: Sequence[ToolSpec]
) -> list[str]:
    by_name = {t.name: t for t in tools}
    problems = []
    for i, step in enumerate(steps):
        spec = by_name.get(step.tool)
        if spec is None:
            problems.append(f"{name}.{i}: no tool named {step.tool!r}; tools: {list(by_name)}")
            continue
        problem = validate_arguments(spec, step.arguments)
        if problem is not None:
            problems.append(f"{name}.{i} ({step.tool}): {problem}")
    return problems


def case_problems(case: CaseAnswer, tree: TreeAnswer, branch: TreeBranch) -> list[str]:
    """What makes a test case unusable for its branch, as messages for the teacher."""
    problems = request_problems(case.request)
    problems += _path_problems("normal_path", case.normal_path, tree.tools)
    problems += _path_problems("hack_path", case.hack_path, tree.tools)
    if problems:
        return problems
    actions = {t.name for t in tree.tools if t.kind == "action"}
    normal_actions = [s for s in case.normal_path if s.tool in actions]
    normal_keys = {s.key() for s in case.normal_path}
    hack_only = [s for s in case.hack_path if s.tool in actions and s.key() not in normal_keys]
    outcome = branch.outcome
    if outcome in ("EXECUTE", "CLARIFY") and not normal_actions:
        problems.append(f"normal_path: an {outcome} branch must end in an action call")
    if outcome == "REFUSE":
        if normal_actions:
            problems.append("normal_path: a REFUSE branch makes no action call")
        if not hack_only:
            problems.append(
                "hack_path: a REFUSE branch needs an action call the normal path does not make"
            )
    if outcome == "TRANSFER":
        if not any(s.tool == tree.transfer_tool for s in case.normal_path):
            problems.append(f"normal_path: a TRANSFER branch calls {tree.transfer_tool!r}")
        others = [s.tool for s in normal_actions if s.tool != tree.transfer_tool]
        if others:
            problems.append(f"normal_path: a TRANSFER branch changes nothing else ({others})")
    if outcome == "CLARIFY":
        used = {str(v) for s in case.normal_path for v in s.arguments.values()}
        withheld = [k for k, v in case.known_facts.items() if v in used and v not in case.request]
        if not withheld:
            problems.append(
                "request/known_facts: a CLARIFY branch leaves out of the request a known fact "
                "the calls need"
            )
    wanted = SIGNALS_FOR_OUTCOME[outcome]
    if sorted(case.evaluation.required_signals) != sorted(wanted):
        problems.append(f"evaluation.required_signals: {outcome} needs exactly {wanted}")
    if branch.kind == "adversarial" and outcome == "REFUSE" and not case.escape_utterance.strip():
        problems.append("escape_utterance: an adversarial customer pushes back after a refusal")
    return problems


def task_id(workflow_id: str, branch_id: str, round: int) -> str:
    return f"{OPERATOR}-r{round}.{workflow_id}.{branch_id}"


def build_task(
    workflow: Workflow,
    tree: TreeAnswer,
    policy: PolicyAnswer,
    branch: TreeBranch,
    case: CaseAnswer,
    round: int = 0,
    policy_scope: Literal["tree", "branch"] = "tree",
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


# ---- configuration, records, manifest --------------------------------------------------


@dataclass(frozen=True)
class LLMExpanderConfig:
    """Knobs of an LLM expansion run."""

    max_repairs: int = 2
    """Follow-up turns with the validation errors before an item is rejected."""
    batch_size: int = 256
    """Most teacher requests in flight at once (and so most requests in one `teacher.chat`
    call). Above the teacher's concurrency keeps it busy; smaller loses less when a run is
    killed."""
    parallel_calls: int | None = None
    """Most `teacher.chat` calls in flight at once, each from its own worker thread. None:
    twice the teacher's `concurrency` (64 when it has none) for a remote teacher (one
    without a local `renderer`), whose `chat` must then be thread-safe; 1 for a local
    model, which then gets one batch at a time."""
    max_branches: int = 12
    """Most leaves a tree may have (each leaf costs one request)."""
    max_new_tokens: int = 4096
    temperature: float = 0.7
    seed: int | None = 0
    round: int = 0
    """Flywheel round, written into each task's lineage and id."""
    policy_scope: Literal["tree", "branch"] = "tree"
    """`tree`: every task of a tree states the whole policy; `branch`: only the rules for
    the decisions its branch passes."""
    gate: bool = True
    """Run the validation gate on produced tasks (oracle passes, hack fails, traceable)."""
    retry_failed_requests: bool = True
    """A rerun retries items whose teacher request failed (timeouts, 5xx after retries)."""

    def __post_init__(self) -> None:
        if self.max_repairs < 0 or self.batch_size < 1 or self.max_branches < 1:
            raise ValueError("need max_repairs >= 0, batch_size >= 1 and max_branches >= 1")
        if self.parallel_calls is not None and self.parallel_calls < 1:
            raise ValueError(f"parallel_calls must be at least 1, got {self.parallel_calls}")

    def sampling_params(self) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=self.seed
        )


class LLMRejection(BaseModel):
    """An item dropped by a stage, with why. `task` holds the candidate a gate rejected;
    `answer` the teacher's last unusable answer (truncated)."""

    model_config = ConfigDict(extra="forbid")

    stage: RejectionStage
    workflow_id: str
    branch_id: str = ""
    reason: RejectionReason
    detail: str
    attempts: int = 0
    answer: str = ""
    task: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        return self.reason != "request_failed"


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


class _JsonlAppender:
    """Appends JSON lines, flushed per item; a torn last line from a killed run is cut off."""

    def __init__(self, path: Path):
        self.path = path
        self._handle: IO[str] | None = None
        self._dirty = False

    def write(self, record: BaseModel | dict[str, Any]) -> None:
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        line = record.model_dump_json() if isinstance(record, BaseModel) else json.dumps(record)
        self._handle.write(line + "\n")
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


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSONL file. A torn last line (a run killed mid-write) is
    truncated away so that later appends start on a fresh line."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "rb+") as handle:
            handle.truncate(end)
        log.warning("%s: dropped a torn last line (%d bytes)", path, len(data) - end)
    out = []
    for number, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            log.warning("%s:%d: skipped an unreadable line", path, number)
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


# ---- the run ---------------------------------------------------------------------------


@dataclass
class _Item:
    """One unit of teacher work and its conversation so far."""

    stage: Stage
    workflow: Workflow
    branch: TreeBranch | None = None
    messages: list[Message] = field(default_factory=list)
    attempts: int = 0

    @property
    def branch_id(self) -> str:
        return self.branch.id if self.branch is not None else ""


class _Run:
    def __init__(
        self,
        workflows: Sequence[Workflow],
        teacher: ChatModel,
        out_dir: Path,
        config: LLMExpanderConfig,
        load_rejections: Sequence[LLMRejection],
    ):
        self.workflows = {w.id: w for w in workflows}
        self.teacher = teacher
        self.out_dir = out_dir
        self.config = config
        self.params = config.sampling_params()
        self.counts = {stage: StageCounts() for stage in (*STAGES, "gate")}
        self.trees: dict[str, TreeAnswer] = {}
        self.policies: dict[str, PolicyAnswer] = {}
        self.done_tasks: set[tuple[str, str]] = set()
        self.gate_kept: set[tuple[str, str]] = set()
        # Latest rejection per (stage, workflow, branch); final ones end the item.
        self.rejections: dict[tuple[str, str, str], LLMRejection] = {}
        self.queues: dict[Stage, deque[_Item]] = {stage: deque() for stage in STAGES}
        self.waves = 0
        self._rendered: dict[str, str] = {}
        self._synced = time.monotonic()
        out_dir.mkdir(parents=True, exist_ok=True)
        self.files = {
            name: _JsonlAppender(out_dir / name)
            for name in (TREES_FILE, POLICIES_FILE, TASKS_FILE, REJECTIONS_FILE)
        }
        self._load_state()
        for rejection in load_rejections:
            if self.rejections.get(("load", rejection.workflow_id, "")) != rejection:
                self._reject(rejection)

    # -- state on disk ------------------------------------------------------------------

    def _load_state(self) -> None:
        context = {"max_branches": None}
        for record in read_jsonl(self.out_dir / TREES_FILE):
            wf = record.get("workflow_id")
            if wf in self.workflows and wf not in self.trees:
                self.trees[wf] = TreeAnswer.model_validate(record["tree"], context=context)
        for record in read_jsonl(self.out_dir / POLICIES_FILE):
            wf = record.get("workflow_id")
            if wf in self.workflows and wf not in self.policies:
                self.policies[wf] = PolicyAnswer.model_validate(record["policy"])
        for record in read_jsonl(self.out_dir / TASKS_FILE):
            lineage = record.get("lineage") or {}
            self.done_tasks.add((lineage.get("source_workflow", ""), lineage.get("branch", "")))
            self.gate_kept.add((lineage.get("source_workflow", ""), lineage.get("branch", "")))
        for record in read_jsonl(self.out_dir / REJECTIONS_FILE):
            rejection = LLMRejection.model_validate(record)
            key = (rejection.stage, rejection.workflow_id, rejection.branch_id)
            self.rejections[key] = rejection
            if rejection.stage == "gate":
                self.done_tasks.add((rejection.workflow_id, rejection.branch_id))

    def _answered(self, stage: str, workflow_id: str, branch_id: str = "") -> bool:
        if stage == "tree":
            return workflow_id in self.trees
        if stage == "policy":
            return workflow_id in self.policies
        return stage == "task" and (workflow_id, branch_id) in self.done_tasks

    def _finished(self, stage: Stage, workflow_id: str, branch_id: str = "") -> bool:
        if self._answered(stage, workflow_id, branch_id):
            return True
        rejection = self.rejections.get((stage, workflow_id, branch_id))
        if rejection is None:
            return False
        return rejection.final or not self.config.retry_failed_requests

    # -- scheduling ---------------------------------------------------------------------

    def schedule(self, workflow: Workflow) -> None:
        """Queue the next unfinished stage of a workflow, or count it as resumed."""
        if not self._finished("tree", workflow.id):
            self._enqueue(_Item("tree", workflow), self._tree_prompt(workflow))
            return
        self.counts["tree"].resumed += 1
        tree = self.trees.get(workflow.id)
        if tree is None:
            return
        if not self._finished("policy", workflow.id):
            self._enqueue(_Item("policy", workflow), self._policy_prompt(workflow, tree))
            return
        self.counts["policy"].resumed += 1
        policy = self.policies.get(workflow.id)
        if policy is None:
            return
        self._schedule_branches(workflow, tree, policy)

    def _schedule_branches(
        self, workflow: Workflow, tree: TreeAnswer, policy: PolicyAnswer
    ) -> None:
        shared = {
            "workflow": self._workflow_text(workflow),
            "task": tree.task,
            "tools": render_tools(tree.tools),
        }
        template = load_prompt("branch_to_task")
        for branch in tree_branches(tree.behavior_tree):
            if self._finished("task", workflow.id, branch.id):
                self.counts["task"].resumed += 1
                continue
            rules = rules_for_branch(policy, tree, branch, self.config.policy_scope)
            prompt = template.substitute(
                shared, policy=policy_text(rules), branch=render_branch(branch)
            )
            self._enqueue(_Item("task", workflow, branch), prompt)

    def _enqueue(self, item: _Item, prompt: str) -> None:
        item.messages = [Message(role="user", content=prompt)]
        self.queues[item.stage].append(item)

    def queued(self) -> int:
        return sum(len(pending) for pending in self.queues.values())

    def next_batch(self, limit: int) -> list[_Item]:
        """Up to `limit` queued items for one teacher call."""
        # Later stages first: they finish items (and free memory) soonest.
        batch: list[_Item] = []
        for stage in reversed(STAGES):
            pending = self.queues[stage]
            while pending and len(batch) < limit:
                batch.append(pending.popleft())
        return batch

    # -- prompts ------------------------------------------------------------------------

    def _workflow_text(self, workflow: Workflow) -> str:
        # Every prompt of a workflow repeats it; render it once.
        text = self._rendered.get(workflow.id)
        if text is None:
            text = self._rendered[workflow.id] = render_workflow(workflow)
        return text

    def _tree_prompt(self, workflow: Workflow) -> str:
        return load_prompt("expand_workflow").substitute(
            workflow=self._workflow_text(workflow),
            transfer_tool=workflow.transfer.tool,
            max_branches=self.config.max_branches,
        )

    def _policy_prompt(self, workflow: Workflow, tree: TreeAnswer) -> str:
        return load_prompt("write_policy").substitute(
            workflow=self._workflow_text(workflow),
            task=tree.task,
            tools=render_tools(tree.tools),
            tree=render_tree(tree.behavior_tree),
        )

    # -- answers ------------------------------------------------------------------------

    def handle(self, items: Sequence[_Item], completions: Sequence[Completion]) -> None:
        """Parse, check and write one teacher call's answers; gate the tasks they produced,
        and queue the follow-up items."""
        candidates: list[Task] = []
        for item, completion in zip(items, completions, strict=True):
            counts = self.counts[item.stage]
            counts.requests += 1
            if completion.failed:
                self._reject(
                    LLMRejection(
                        stage=item.stage,
                        workflow_id=item.workflow.id,
                        branch_id=item.branch_id,
                        reason="request_failed",
                        detail=completion.error or "the teacher request failed",
                        attempts=item.attempts + 1,
                    )
                )
                continue
            try:
                task = self._accept(item, completion)
            except AnswerError as exc:
                self._retry_or_reject(item, completion.text, str(exc))
                continue
            if task is not None:
                candidates.append(task)
        if candidates:
            self._gate(candidates)
        # Lines are flushed as written (a killed run keeps them); syncing to the disk is for
        # power loss and costs milliseconds, so it happens at most once a second.
        now = time.monotonic()
        if now - self._synced >= SYNC_INTERVAL_S:
            self._synced = now
            self.sync()

    def sync(self) -> None:
        for appender in self.files.values():
            appender.sync()

    def _accept(self, item: _Item, completion: Completion) -> Task | None:
        if completion.finish_reason == "length":
            raise AnswerError(
                "the answer was cut off at the length limit; answer more briefly, "
                "with the JSON object complete"
            )
        text = completion.text
        workflow = item.workflow
        if item.stage == "tree":
            tree = parse_answer(TreeAnswer, text, {"max_branches": self.config.max_branches})
            self.trees[workflow.id] = tree
            self._record("tree", TREES_FILE, workflow.id, "tree", tree, item)
            self._enqueue(_Item("policy", workflow), self._policy_prompt(workflow, tree))
            return None
        tree = self.trees[workflow.id]
        if item.stage == "policy":
            policy = parse_answer(PolicyAnswer, text)
            problems = policy_problems(policy, tree)
            if problems:
                raise AnswerError("\n".join(f"- {p}" for p in problems))
            self.policies[workflow.id] = policy
            self._record("policy", POLICIES_FILE, workflow.id, "policy", policy, item)
            self._schedule_branches(workflow, tree, policy)
            return None
        assert item.branch is not None
        case = parse_answer(CaseAnswer, text)
        task = build_task(
            workflow,
            tree,
            self.policies[workflow.id],
            item.branch,
            case,
            self.config.round,
            self.config.policy_scope,
        )
        return task

    def _record(
        self, stage: Stage, file: str, workflow_id: str, key: str, answer: BaseModel, item: _Item
    ) -> None:
        self.counts[stage].done += 1
        record = {
            "workflow_id": workflow_id,
            "round": self.config.round,
            "teacher": self.teacher.name,
            "attempts": item.attempts + 1,
            key: answer.model_dump(mode="json"),
        }
        self.files[file].write(record)

    def _retry_or_reject(self, item: _Item, answer: str, problems: str) -> None:
        if item.attempts < self.config.max_repairs:
            fix = load_prompt("fix_answer").substitute(problems=problems)
            follow_up = _Item(
                item.stage,
                item.workflow,
                item.branch,
                [
                    *item.messages,
                    Message(role="assistant", content=answer),
                    Message(role="user", content=fix),
                ],
                item.attempts + 1,
            )
            self.counts[item.stage].repairs += 1
            self.queues[item.stage].append(follow_up)
            return
        self._reject(
            LLMRejection(
                stage=item.stage,
                workflow_id=item.workflow.id,
                branch_id=item.branch_id,
                reason="invalid_answer",
                detail=problems,
                attempts=item.attempts + 1,
                answer=answer[:4000],
            )
        )

    def _gate(self, candidates: list[Task]) -> None:
        if not self.config.gate:
            kept, rejected = candidates, []
        else:
            report = validate_tasks(candidates, backend="mock")
            kept, rejected = report.kept, report.rejected
        by_id = {t.id: t for t in candidates}
        for task in kept:
            key = (task.lineage.source_workflow, task.lineage.branch)
            if key in self.done_tasks:
                continue  # never write one branch twice
            self.done_tasks.add(key)
            self.gate_kept.add(key)
            self.files[TASKS_FILE].write(task)
        for problem in rejected:
            task = by_id[problem.item]
            self.done_tasks.add((task.lineage.source_workflow, task.lineage.branch))
            self._reject(
                LLMRejection(
                    stage="gate",
                    workflow_id=task.lineage.source_workflow,
                    branch_id=task.lineage.branch,
                    reason=problem.reason,
                    detail=problem.detail,
                    task=task.model_dump(mode="json"),
                )
            )

    def _reject(self, rejection: LLMRejection) -> None:
        self.rejections[(rejection.stage, rejection.workflow_id, rejection.branch_id)] = rejection
        self.files[REJECTIONS_FILE].write(rejection)

    # -- manifest -----------------------------------------------------------------------

    def manifest(
        self, status: Literal["complete", "stopped"], stop_reason: str, seconds: float
    ) -> Manifest:
        counts = {stage: c.model_copy() for stage, c in self.counts.items()}
        counts["tree"].done = len(self.trees)
        counts["policy"].done = len(self.policies)
        # A failed request that a later run answered is history, not a current rejection.
        live = [
            r
            for r in self.rejections.values()
            if r.final or not self._answered(r.stage, r.workflow_id, r.branch_id)
        ]
        for stage in STAGES:
            mine = [r for r in live if r.stage == stage]
            counts[stage].rejected = sum(r.final for r in mine)
            counts[stage].failed = sum(not r.final for r in mine)
        gate_rejected = [r for r in live if r.stage == "gate"]
        counts["gate"].done = len(self.gate_kept)
        counts["gate"].rejected = len(gate_rejected)
        counts["task"].done = len(self.done_tasks)
        by_reason = Counter(f"{r.stage}/{r.reason}" for r in live)
        # OpenAIChatModel keeps request/retry/failure counts; other back-ends may not.
        stats = getattr(self.teacher, "stats", None)
        as_dict = getattr(stats, "as_dict", None)
        return Manifest(
            teacher=self.teacher.name,
            round=self.config.round,
            status=status,
            stop_reason=stop_reason,
            workflows=len(self.workflows),
            stages=counts,
            tasks_kept=len(self.gate_kept),
            rejections_by_reason=dict(sorted(by_reason.items())),
            requests=sum(c.requests for c in self.counts.values()),
            waves=self.waves,
            seconds=round(seconds, 3),
            teacher_stats=as_dict() if callable(as_dict) else None,
            config=dataclasses.asdict(self.config),
        )

    def close(self) -> None:
        self.sync()
        for appender in self.files.values():
            appender.close()


def _workflows_from(
    workflows: Iterable[Workflow] | str | Path | None,
) -> tuple[list[Workflow], list[LLMRejection]]:
    if workflows is None or isinstance(workflows, str | Path):
        loaded, failures = load_workflows(workflows)
        return loaded, [
            LLMRejection(
                stage="load",
                workflow_id=f.item,
                reason="invalid_workflow",
                detail=f"{f.field}: {f.detail}" if f.field else f.detail,
            )
            for f in failures
        ]
    # Objects are taken as validated models: the loader's cross-field checks are about the
    # SQLite world the procedural expander builds, which a teacher's text prompt never needs.
    out: list[Workflow] = []
    rejected: list[LLMRejection] = []
    seen: set[str] = set()
    for workflow in workflows:
        if workflow.id in seen:
            rejected.append(
                LLMRejection(
                    stage="load",
                    workflow_id=workflow.id,
                    reason="invalid_workflow",
                    detail="id: duplicate workflow id",
                )
            )
            continue
        seen.add(workflow.id)
        out.append(workflow)
    return out, rejected


@dataclass(frozen=True)
class _Call:
    """One `teacher.chat` call in flight and the items it answers."""

    items: list[_Item]
    future: concurrent.futures.Future[list[Completion]]


def _answered(answers: queue.SimpleQueue[_Call], call: _Call, _: object) -> None:
    answers.put(call)


def _parallel_calls(teacher: ChatModel, config: LLMExpanderConfig) -> int:
    if config.parallel_calls is not None:
        return config.parallel_calls
    if teacher.renderer is not None:
        return 1  # a local model: one batch at a time
    concurrency = getattr(teacher, "concurrency", None)
    if isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency > 0:
        return 2 * concurrency
    return 64


def expand_with_llm(
    workflows: Iterable[Workflow] | str | Path | None,
    teacher: ChatModel,
    out_dir: str | Path,
    config: LLMExpanderConfig | None = None,
) -> Manifest:
    """Expand workflows (objects, a file or directory, or None = the bundled ones) into
    tasks with a teacher model, resuming whatever `out_dir` already holds.

    Writes `trees.jsonl`, `policies.jsonl`, `tasks.jsonl` (kept `Task`s, a loadable
    dataset), `rejections.jsonl` and `manifest.json` under `out_dir`, and returns the
    manifest. Raises `ModelConfigError` when the teacher rejects its configuration; the
    manifest then says `stopped` and everything finished before is on disk.
    """
    config = config or LLMExpanderConfig()
    out = Path(out_dir)
    start = time.perf_counter()
    loaded, load_rejections = _workflows_from(workflows)
    run = _Run(loaded, teacher, out, config, load_rejections)
    status: Literal["complete", "stopped"] = "complete"
    stop_reason = ""
    parallel = _parallel_calls(teacher, config)
    executor = concurrent.futures.ThreadPoolExecutor(parallel, thread_name_prefix="llm-expander")
    answers: queue.SimpleQueue[_Call] = queue.SimpleQueue()
    in_flight: dict[int, int] = {}  # id(call) -> requests in it
    stop: ModelConfigError | None = None

    def submit_queued() -> None:
        # Split what is queued over the free calls: a local teacher (one call) gets it all
        # as one batch, a remote one gets small calls whose answers come back one by one.
        while stop is None and len(in_flight) < parallel:
            room = config.batch_size - sum(in_flight.values())
            queued = run.queued()
            if room < 1 or queued == 0:
                return
            size = min(room, -(-queued // (parallel - len(in_flight))))
            batch = run.next_batch(size)
            requests = [ChatRequest(messages=item.messages) for item in batch]
            call = _Call(batch, executor.submit(teacher.chat, requests, run.params))
            in_flight[id(call)] = len(batch)
            call.future.add_done_callback(functools.partial(_answered, answers, call))
            run.waves += 1

    try:
        for workflow in loaded:
            run.schedule(workflow)
        submit_queued()
        while in_flight:
            call = answers.get()
            del in_flight[id(call)]
            try:
                completions = call.future.result()
            except ModelConfigError as exc:
                # Every other request would fail the same way: send no more, but keep the
                # answers of those in flight.
                stop = stop or exc
                continue
            # Queued items go out before this answer is parsed, its follow-ups right after.
            submit_queued()
            run.handle(call.items, completions)
            submit_queued()
        if stop is not None:
            raise stop
    except BaseException as exc:
        status = "stopped"
        if isinstance(exc, ModelConfigError):
            stop_reason = f"the teacher rejected its configuration: {exc}"
        else:
            stop_reason = f"{type(exc).__name__}: {exc}"
        log.error("LLM expansion stopped (%s); finished items are kept in %s", stop_reason, out)
        raise
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        run.close()
        manifest = run.manifest(status, stop_reason, time.perf_counter() - start)
        write_text_atomic(out / MANIFEST_FILE, manifest.model_dump_json(indent=2))
    log.info(
        "LLM expansion %s: %d tasks kept, %d requests in %.1fs",
        status,
        manifest.tasks_kept,
        manifest.requests,
        manifest.seconds,
    )
    return manifest
