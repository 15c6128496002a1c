"""The "lookup" operator: the user does not know the record's id, only what it is.

A customer rarely has the order number at hand; they say "the oak side table I ordered".
`lookup_task` turns a validated SQLite task into that conversation:

- the user no longer knows the identifier: the request describes the record instead
  ("I can't find my order number; it's the order whose item is oak side table"), and when
  asked for the identifier the scripted user answers with that description (the known
  fact's value is the describing sentence, so the user simulator needs no special case);
- the task gets a list tool (`list_customer_orders(customer_id)`): the workflow's own
  one when it declares a tool that lists the table by owner and shows the id and the
  description, otherwise a generated `list_<table>`;
- the user owns at least two records of the table and the description fits only the
  target: a decoy row is added (generated like the others), and other rows of the user
  that share the description get another value; no path call reads those rows;
- the list call, whose argument is the user's key from the earlier lookup of the user's
  record, goes right before the first call that uses the identifier, in the normal and
  the hack path; expected outputs are recomputed by replaying both paths on the world;
- the policy gets one line allowing the lookup.

Which workflows qualify, and what the operator needs from one, is `lookup_target.py`'s
concern. A task qualifies when, in addition, it is not a transfer, not the clarify branch
of that identifier, its normal path uses the identifier after a call that showed the
user's key, and the record belongs to the user (a "not your order" refusal cannot be
described from the user's own list). Otherwise the result carries no task and the reason.
"""

from __future__ import annotations

import json
import random
from typing import Any, NamedTuple

from faker import Faker

from agentwheel.core.task import SqlTable, Task, ToolCallStep, ToolSpec, UserSide
from agentwheel.envs.tools import fill_expected_outputs, is_tool_error
from agentwheel.flywheels.agentic import phrasing
from agentwheel.flywheels.agentic.lookup_target import LookupTarget, lookup_target
from agentwheel.flywheels.agentic.seeds import derive_seed
from agentwheel.flywheels.agentic.validate import trace_problems
from agentwheel.flywheels.agentic.workflow import MAX_TASK_TOOLS, ColumnGen, ToolDef, Workflow
from agentwheel.flywheels.agentic.world import collides, generate_value, make_faker, unique_groups

LOOKUP = "lookup"
_MAX_TRIES = 30


class LookupResult(NamedTuple):
    """The transformed task, or None and why the operator does not apply."""

    task: Task | None
    reason: str = ""


def _uses(step: ToolCallStep, target: LookupTarget, id_value: str) -> bool:
    return step.tool in target.id_tools and any(str(v) == id_value for v in step.arguments.values())


def _first_use(path: list[ToolCallStep], target: LookupTarget, id_value: str) -> int | None:
    return next((i for i, s in enumerate(path) if _uses(s, target, id_value)), None)


def _shown_key(steps: list[ToolCallStep], key: str) -> Any:
    """The user's key as an earlier call's output showed it (first one wins)."""
    for step in steps:
        out = step.expected_output
        for row in out if isinstance(out, list) else [out]:
            if isinstance(row, dict) and row.get(key) is not None:
                return row[key]
    return None


def _rows(table: SqlTable) -> list[dict[str, Any]]:
    return [dict(zip(table.columns, row, strict=True)) for row in table.row_tuples()]


def _other_value(
    gen: ColumnGen,
    avoid: set[Any],
    rng: random.Random,
    fake: Faker,
    row: dict[str, Any],
    tables: dict[str, list[dict[str, Any]]],
) -> Any:
    if gen.choice is not None:
        options = [c for c in gen.choice if c not in avoid]
        return rng.choice(options) if options else None
    for _ in range(_MAX_TRIES):
        value = generate_value(gen, rng, fake, row, tables)
        if value not in avoid:
            return value
    return None


def _make_description_unique(
    wf: Workflow,
    target: LookupTarget,
    tables: dict[str, list[dict[str, Any]]],
    record: dict[str, Any],
    owner_key: Any,
    rng: random.Random,
    fake: Faker,
) -> str | None:
    """Give the user a second record of T and a description only the target has.

    Returns why that is impossible, or None when the rows were changed in place.
    """
    spec = wf.tables[target.table]
    rows = tables[target.table]
    groups = unique_groups(wf, target.table)
    gen = spec.columns[target.description]
    assert gen is not None
    avoid = {record[target.description]}
    for row in rows:
        if row is record or row[target.owner_column] != owner_key:
            continue
        if row[target.description] in avoid:
            value = _other_value(gen, avoid, rng, fake, row, tables)
            if value is None:
                return f"{target.description} has no second value"
            row[target.description] = value
    if sum(r[target.owner_column] == owner_key for r in rows) >= 2:
        return None
    for _ in range(_MAX_TRIES):
        decoy: dict[str, Any] = {}
        for column, column_gen in spec.columns.items():
            assert column_gen is not None
            decoy[column] = generate_value(column_gen, rng, fake, decoy, tables)
        decoy[target.owner_column] = owner_key
        if decoy[target.description] in avoid:
            decoy[target.description] = _other_value(gen, avoid, rng, fake, decoy, tables)
        if decoy[target.description] is not None and not collides(decoy, rows, groups):
            # Anywhere in the table: the target's place must not give it away.
            rows.insert(rng.randint(0, len(rows)), decoy)
            return None
    return f"no decoy {target.noun} distinct from the others"


def _with_list_tool(
    task: Task, tool: ToolDef, rng: random.Random, keep: set[str]
) -> tuple[list[ToolSpec], str | None] | str:
    """The task's tools with the list tool, and the distractor it replaced (if any).

    At the tool limit the list tool takes the place of a distractor (a tool on neither
    path): the task keeps its tool count, and no path loses a tool.
    """
    tools = list(task.tools)
    if any(t.name == tool.name for t in tools):
        return tools, None
    if len(tools) < MAX_TASK_TOOLS:
        tools.insert(rng.randint(0, len(tools)), tool.spec())
        return tools, None
    on_path = {s.tool for s in [*task.normal_path, *task.hack_path]} | keep
    distractors = [i for i, t in enumerate(tools) if t.name not in on_path]
    if not distractors:
        return f"the task has {len(tools)} tools, all of them needed"
    at = rng.choice(distractors)
    dropped = tools[at].name
    tools[at] = tool.spec()
    return tools, dropped


def _policy_line(target: LookupTarget) -> str:
    ident = target.identifier
    return (
        f"- A user who does not know their {ident.spoken} may describe the {target.noun} "
        f"instead: find it with {target.list_tool.name} and go on only if the "
        f"{target.description.replace('_', ' ')} of exactly one of their "
        f"{target.table.replace('_', ' ')} matches what they describe."
    )


def _with_policy_line(instruction: str, line: str) -> str:
    lines = instruction.split("\n")
    at = next((i + 1 for i, text in enumerate(lines) if text.startswith("- You need")), None)
    if at is None:
        return f"{instruction}\n{line}"
    return "\n".join([*lines[:at], line, *lines[at:]])


def _same_output(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _user_without_id(
    wf: Workflow, task: Task, target: LookupTarget, record: dict[str, Any], rng: random.Random
) -> UserSide | str:
    """The user's side with the identifier replaced by a description of the record:
    in the request, as the known fact's answer, in the situation and the push-back."""
    ident = target.identifier
    facts = task.user.known_facts
    id_value = facts[ident.name]
    record_text = phrasing.describe_record(
        target.noun,
        target.description,
        str(record[target.description]),
        rng,
        wf.phrasing.records,
    )
    stated = [
        (i.spoken, facts[i.name])
        for i in wf.identifiers
        if i.name in facts and facts[i.name] in task.user.request
    ]
    drop = next((k for k, (_, v) in enumerate(stated) if v == id_value), None)
    sentence = phrasing.unknown_id_sentence(ident.spoken, record_text, rng)
    request = (
        None
        if drop is None
        else phrasing.describe_instead_of_id(task.user.request, stated, drop, sentence)
    )
    if request is None or id_value in request:
        return f"the request names the {ident.spoken} in words it cannot drop"
    background = task.user.hack_success_user_background
    if id_value in background:
        every = [(i.spoken, facts[i.name]) for i in wf.identifiers if i.name in facts]
        index = next(k for k, (_, v) in enumerate(every) if v == id_value)
        restated = phrasing.drop_id(background, every, index)
        if restated is None or id_value in restated[0]:
            return f"the push-back names the {ident.spoken}"
        background = restated[0].strip()
    return task.user.model_copy(
        update={
            "request": request,
            "known_facts": {**facts, ident.name: phrasing.unknown_id_fact(record_text, rng)},
            "situation": (
                task.user.situation.replace(id_value, record_text)
                + f" You do not know your {ident.spoken}; describe the {target.noun} instead: "
                + f"{record_text}."
            ).strip(),
            "escape_utterance": task.user.escape_utterance.replace(id_value, record_text),
            "hack_success_user_background": background,
        }
    )


def lookup_task(wf: Workflow, task: Task, seed: int = 0) -> LookupResult:
    """`task` (an instantiated, validated SQLite task of `wf`) as a conversation in which
    the user does not know the record's identifier; or no task and the reason.

    The new task's id is `<task id>-lookup`; its lineage operator is `lookup`, or
    `<operator>+lookup` when `task` is itself an evolved task (`deepen+lookup`).
    """
    target = lookup_target(wf)
    if isinstance(target, str):
        return LookupResult(None, target)
    ident = target.identifier
    if LOOKUP in (task.lineage.operator or "").split("+"):
        return LookupResult(None, "already a lookup task")
    if task.sqlite is None:
        return LookupResult(None, "the task has no SQLite world")
    if task.branch_kind == "transfer":
        return LookupResult(None, "a transfer does not need the record")
    id_value = task.user.known_facts.get(ident.name)
    if id_value is None:
        return LookupResult(None, f"the user does not know the {ident.spoken}")
    if task.branch_kind == "clarify" and id_value not in task.user.request:
        return LookupResult(None, f"the branch asks for the {ident.spoken} itself")
    at = _first_use(task.normal_path, target, id_value)
    if at is None:
        return LookupResult(None, f"the normal path never uses the {ident.spoken}")
    owner_key = _shown_key(task.normal_path[:at], target.user_key)
    if owner_key is None:
        return LookupResult(None, f"no call before the {ident.spoken} shows {target.user_key}")
    tables = {name: _rows(t) for name, t in task.sqlite.tables.items()}
    matches = [r for r in tables[target.table] if str(r[target.column]) == id_value]
    if len(matches) != 1:
        return LookupResult(None, f"the {ident.spoken} matches {len(matches)} records")
    record = matches[0]
    if record[target.owner_column] != owner_key:
        return LookupResult(None, f"the {target.noun} is not the user's own")
    rng = random.Random(derive_seed(seed, task.id, LOOKUP))
    fake = make_faker(derive_seed(seed, task.id, LOOKUP, "faker"))
    problem = _make_description_unique(wf, target, tables, record, owner_key, rng, fake)
    if problem is not None:
        return LookupResult(None, problem)
    keep = {wf.transfer.tool, task.evaluation.transfer_tool}
    picked = _with_list_tool(task, target.list_tool, rng, keep)
    if isinstance(picked, str):
        return LookupResult(None, picked)
    tools, dropped = picked

    user = _user_without_id(wf, task, target, record, rng)
    if isinstance(user, str):
        return LookupResult(None, user)

    call = ToolCallStep(tool=target.list_tool.name, arguments={target.list_param: owner_key})
    normal = [s.model_copy() for s in task.normal_path]
    normal.insert(at, call.model_copy())
    hack = [s.model_copy() for s in task.hack_path]
    hack_at = _first_use(hack, target, id_value)
    if hack_at is not None:
        hack.insert(hack_at, call.model_copy())
    impls = {k: v for k, v in task.sqlite.tools.items() if k != dropped}
    impls[target.list_tool.name] = target.list_tool.impl()
    world = task.sqlite.model_copy(
        update={
            "tables": {
                name: SqlTable(
                    columns=list(table.columns),
                    rows=[[row[c] for c in table.columns] for row in tables[name]],
                )
                for name, table in task.sqlite.tables.items()
            },
            "tools": impls,
        }
    )
    operator = task.lineage.operator
    stacked = task.lineage.parent_id is not None and operator
    evolved = Task.model_validate(
        {
            **task.model_dump(),
            "id": f"{task.id}-{LOOKUP}",
            "instruction": _with_policy_line(task.instruction, _policy_line(target)),
            "tools": [t.model_dump() for t in tools],
            "user": user.model_dump(),
            "normal_path": [s.model_dump() for s in normal],
            "hack_path": [s.model_dump() for s in hack],
            "sqlite": world.model_dump(),
            "lineage": {
                **task.lineage.model_dump(),
                "operator": f"{operator}+{LOOKUP}" if stacked else LOOKUP,
            },
        }
    )
    return _checked(fill_expected_outputs(evolved), task, target, at, hack_at, record)


def _checked(
    evolved: Task,
    parent: Task,
    target: LookupTarget,
    at: int,
    hack_at: int | None,
    record: dict[str, Any],
) -> LookupResult:
    """The replayed task, if the list call found the user's records (the target among
    several) and every other call saw exactly what it saw before the transform."""
    listed = evolved.normal_path[at].expected_output
    if is_tool_error(listed) or not isinstance(listed, list):
        return LookupResult(None, f"{target.list_tool.name} failed: {listed}")
    ids = [str(row.get(target.column)) for row in listed]
    if len(listed) < 2 or ids.count(str(record[target.column])) != 1:
        return LookupResult(None, f"{target.list_tool.name} does not single out the record")
    pairs = [(evolved.normal_path[:at] + evolved.normal_path[at + 1 :], parent.normal_path)]
    if hack_at is not None:
        pairs.append(
            (evolved.hack_path[:hack_at] + evolved.hack_path[hack_at + 1 :], parent.hack_path)
        )
    for now, before in pairs:
        for a, b in zip(now, before, strict=True):
            if not _same_output(a.expected_output, b.expected_output):
                return LookupResult(None, f"the new rows change what {a.tool} returns")
    problems = trace_problems(evolved)
    if problems:
        return LookupResult(None, f"untraceable: {problems[0]}")
    return LookupResult(evolved)
