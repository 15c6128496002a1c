"""Which workflows the lookup operator applies to, and what it needs from them.

A workflow qualifies (`lookup_target`) when one of its identifiers names a column of an
entity table T other than the user table (its key, or an identifier column, which the
world keeps unique), T has a column that references the user table's key, a step before
the identifier's first step shows that key, and T has a descriptive column (text or
text choices; not a key, reference, status, yes/no flag or rule-constrained field).
The operator then lists the user's rows of T with the workflow's own list tool when it
declares one, otherwise with a generated `list_<table>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentwheel.flywheels.agentic.generator_values import value_types
from agentwheel.flywheels.agentic.workflow import (
    PLACEHOLDER,
    ColumnGen,
    Identifier,
    ParamDef,
    ParamType,
    ToolDef,
    Workflow,
)

# Faker providers whose values describe a record in words (not contact data or codes).
DESCRIPTIVE_FAKERS = frozenset(
    {"name", "first_name", "last_name", "company", "city", "job", "catch_phrase", "word"}
    | {"color_name"}
)
_FLAG_VALUES = {"yes", "no"}
_SELECT = re.compile(
    r"^\s*SELECT\s+(?P<columns>.+?)\s+FROM\s+(?P<table>\w+)\s+WHERE\s+(?P<column>\w+)\s*=\s*"
    r":(?P<param>\w+)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_SELECTED = re.compile(r"^\s*SELECT\s+(?P<columns>.+?)\s+FROM\s", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class LookupTarget:
    """What the operator needs from a workflow: the identifier the user will not know,
    the table T it points into, T's column that names the owner (the user table's key),
    the column that describes a row, and the tool that lists a user's rows of T."""

    identifier: Identifier
    table: str
    column: str
    owner_column: str
    user_key: str
    description: str
    list_tool: ToolDef
    id_tools: frozenset[str]

    @property
    def noun(self) -> str:
        return singular(self.table)

    @property
    def list_param(self) -> str:
        return next(iter(self.list_tool.params))


def singular(table: str) -> str:
    """`orders` → `order`, `entries` → `entry`: the record noun a user would say."""
    if table.endswith("ies"):
        return table[:-3] + "y"
    if table.endswith(("sses", "xes", "ches", "shes")):
        return table[:-2]
    return table[:-1] if table.endswith("s") and not table.endswith("ss") else table


def selected_columns(statement: str) -> list[str]:
    """The plain column names of a SELECT statement's column list."""
    match = _SELECTED.match(statement)
    if match is None:
        return []
    return [c.strip() for c in match.group("columns").split(",")]


def lookup_target(wf: Workflow) -> LookupTarget | str:
    """The first identifier of `wf` the operator can hide, or why none qualifies."""
    if wf.user_table is None or wf.tables[wf.user_table].key is None:
        return "the workflow declares no user table with a key"
    reasons = []
    for ident in wf.identifiers:
        target = _target_for(wf, ident, wf.tables[wf.user_table].key or "")
        if isinstance(target, LookupTarget):
            return target
        reasons.append(f"{ident.name}: {target}")
    return "; ".join(reasons)


def _target_for(wf: Workflow, ident: Identifier, user_key: str) -> LookupTarget | str:
    assert wf.user_table is not None
    table, _, column = ident.field.partition(".")
    if table == wf.user_table:
        return "it identifies the user's own record"
    spec = wf.tables[table]
    if spec.row_range[1] == 0 or any(gen is None for gen in spec.columns.values()):
        return f"{table} is a log, not records the user owns"
    owner_ref = f"{wf.user_table}.{user_key}"
    owner = next(
        (c for c, gen in spec.columns.items() if gen is not None and gen.ref == owner_ref), None
    )
    if owner is None:
        return f"{table} has no column referencing {owner_ref}"
    uses = [
        i
        for i, step in enumerate(wf.steps)
        if any(wf.resolve(src, step) == ident.field for src in step.args.values())
    ]
    first = uses[0]
    if not any(
        user_key in selected_columns(s.tool.sql[-1]) for s in wf.steps[:first] if s.tool.sql
    ):
        return f"no step before {wf.steps[first].tool.name} shows the user's {user_key}"
    description = description_column(wf, table, column)
    if description is None:
        return f"{table} has no column that describes a record in words"
    list_tool = declared_list_tool(wf, table, owner, column, description) or generated_list_tool(
        wf, table, owner, column, description
    )
    id_tools = {wf.steps[i].tool.name for i in uses}
    if wf.transfer.identifier == ident.name:
        id_tools.add(wf.transfer.tool)
    return LookupTarget(
        identifier=ident,
        table=table,
        column=column,
        owner_column=owner,
        user_key=user_key,
        description=description,
        list_tool=list_tool,
        id_tools=frozenset(id_tools),
    )


def description_column(wf: Workflow, table: str, id_column: str) -> str | None:
    """T's column a user would describe a record by, or None.

    Candidates are text columns (text choices, descriptive Faker providers) that are not
    the key, an identifier, a reference, a status, a yes/no flag, or a field some rule
    constrains (describing the record by it would hint at the verdict). Columns the
    workflow's phrasing already mentions come first ("cancel the {orders.item} I
    ordered"), then ones the workflow's own list tools show, then choices.
    """
    spec = wf.tables[table]
    identifiers = {i.field for i in wf.identifiers}
    constrained = {
        wf.resolve(a.field, step) for step, p, _ in wf.all_preconditions() for a in p.alternatives()
    }
    texts = [*wf.phrasing.intents, *wf.phrasing.reasons]
    texts += [r for oos in wf.out_of_scope for r in oos.requests]
    mentioned = {f for text in texts for f in PLACEHOLDER.findall(text)}
    shown = {
        c
        for tool in wf.extra_tools
        for statement in tool.sql
        if f" {table} " in f" {statement} "
        for c in selected_columns(statement)
    }
    ranked = []
    for index, (column, gen) in enumerate(spec.columns.items()):
        field = f"{table}.{column}"
        if gen is None or column in (spec.key, id_column) or field in identifiers:
            continue
        if gen.ref is not None or "status" in column or field in constrained:
            continue
        if not _descriptive(gen):
            continue
        ranked.append(
            ((field not in mentioned, column not in shown, gen.choice is None, index), column)
        )
    return min(ranked)[1] if ranked else None


def _descriptive(gen: ColumnGen) -> bool:
    if gen.choice is not None:
        values = {str(c) for c in gen.choice}
        return (
            all(isinstance(c, str) for c in gen.choice)
            and len(values) >= 2
            and not values <= _FLAG_VALUES
        )
    return gen.faker in DESCRIPTIVE_FAKERS


def declared_list_tool(
    wf: Workflow, table: str, owner: str, id_column: str, description: str
) -> ToolDef | None:
    """A workflow tool that lists T's rows of one owner and shows the id and description."""
    for tool in wf.extra_tools:
        if tool.kind != "query" or len(tool.params) != 1 or len(tool.sql) != 1:
            continue
        match = _SELECT.match(tool.sql[0])
        if match is None or match.group("table") != table or match.group("column") != owner:
            continue
        columns = {c.strip() for c in match.group("columns").split(",")}
        if match.group("param") in tool.params and {id_column, description} <= columns:
            return tool
    return None


def generated_list_tool(
    wf: Workflow, table: str, owner: str, id_column: str, description: str
) -> ToolDef:
    """`list_<table>(owner)`: the id, the description, a status and an amount or date."""
    spec = wf.tables[table]
    taken = {id_column, description, owner}
    status = [c for c in spec.columns if "status" in c and c not in taken][:1]
    measures = [
        c
        for c, gen in spec.columns.items()
        if gen is not None and (gen.money is not None or gen.date is not None) and c not in taken
    ]
    columns = [id_column, description, *status, *measures][:4]
    assert wf.user_table is not None
    user_noun = singular(wf.user_table)
    article = "an" if user_noun[:1] in "aeiou" else "a"
    names = {t.name for t in wf.all_tools()}
    name = f"list_{table}" if f"list_{table}" not in names else f"list_{user_noun}_{table}"
    types = value_types(wf, f"{table}.{owner}")
    param_type: ParamType = "string" if "string" in types or not types else "integer"
    return ToolDef(
        name=name,
        description=(
            f"List {article} {user_noun}'s {table.replace('_', ' ')} "
            f"({', '.join(c.replace('_', ' ') for c in columns)})."
        ),
        kind="query",
        params={
            owner: ParamDef(
                type=param_type,
                description=f"The {user_noun}'s {owner.replace('_', ' ')}.",
            )
        },
        sql=[f"SELECT {', '.join(columns)} FROM {table} WHERE {owner} = :{owner}"],
        returns="rows",
    )
