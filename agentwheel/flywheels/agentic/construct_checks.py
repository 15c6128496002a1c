"""Cross-field checks of the optional workflow constructs: facts the user must give,
what the agent must tell, rules over related rows, rules that transfer or that a user
insists against, columns that follow another (`map`) or the rows that reference them
(`sets`), and further intents.

Each check returns (field path, message) pairs, as `workflow_checks` does; a workflow
without these constructs gets none.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable

from agentwheel.flywheels.agentic.row_checks import check_rows_and_desks
from agentwheel.flywheels.agentic.workflow import (
    MAX_TASK_TOOLS,
    PLACEHOLDER,
    REQUEST,
    SLUG,
    ColumnGen,
    Precondition,
    Scalar,
    Step,
    ToolDef,
    Workflow,
)

Problems = list[tuple[str, str]]


def check_constructs(wf: Workflow, check_workflow: Callable[[Workflow], Problems]) -> Problems:
    """Problems of the constructs; `check_workflow` checks each further intent's view."""
    checks = (_check_maps, _check_sets, _check_facts, _check_rules, check_rows_and_desks)
    for check in (*checks, _check_tells):
        problems = check(wf)
        if problems:
            return problems
    return _check_intents(wf, check_workflow)


def _check_sets(wf: Workflow) -> Problems:
    out: Problems = []
    for table, spec in wf.tables.items():
        for i, rule in enumerate(spec.sets):
            where = f"tables.{table}.sets.{i}"
            gen = spec.columns.get(rule.ref)
            if gen is None or gen.ref is None:
                out.append((f"{where}.ref", f"{rule.ref!r} is not a ref column of {table}"))
                continue
            unknown = sorted(set(rule.when) - set(spec.columns))
            if unknown:
                out.append((f"{where}.when", f"unknown columns {unknown}"))
            for column, value in rule.when.items():
                out += _never_takes(
                    spec.columns.get(column),
                    value,
                    f"{table}.{column}",
                    f"{where}.when.{column}",
                    "the line never fires",
                )
            parent, _, key = gen.ref.partition(".")
            if rule.column not in wf.tables[parent].columns or rule.column == key:
                out.append(
                    (f"{where}.column", f"{rule.column!r} is not a non-key column of {parent}")
                )
    return out


def _never_takes(
    gen: ColumnGen | None, value: Scalar, field: str, where: str, effect: str
) -> Problems:
    """An error when a listed-values column (choice, map, constant) never holds `value`."""
    listed = gen.listed_values() if gen is not None else None
    if listed is None or value in listed:
        return []
    return [
        (
            where,
            f"{value!r} is not a value of {field}, which holds one of {listed}, so {effect}: "
            "write it exactly as the column's generator spells it",
        )
    ]


def _check_maps(wf: Workflow) -> Problems:
    out: Problems = []
    for name, request_gen in wf.request_fields.items():
        if request_gen.map is not None:
            out.append((f"request_fields.{name}.map", "request details cannot follow a column"))
    for table, spec in wf.tables.items():
        earlier: dict[str, ColumnGen | None] = {}
        for column, gen in spec.columns.items():
            if gen is not None and gen.map is not None:
                out += _check_map(gen, f"tables.{table}.columns.{column}.map", earlier)
            earlier[column] = gen
    return out


def _check_map(gen: ColumnGen, where: str, earlier: dict[str, ColumnGen | None]) -> Problems:
    assert gen.map is not None
    source = gen.map.column
    source_gen = earlier.get(source)
    if source_gen is None:
        return [(f"{where}.column", f"{source!r} is not an earlier generated column of this row")]
    values = source_gen.listed_values()
    if values is None:
        return [(f"{where}.column", f"{source!r} must be a choice (or map) column to follow")]
    keys = {str(v) for v in values}
    unmapped = sorted(keys - set(gen.map.values))
    unknown = sorted(set(gen.map.values) - keys)
    if unmapped:
        return [(f"{where}.values", f"no value for {source} = {unmapped}")]
    if unknown:
        return [(f"{where}.values", f"names values {source} never takes: {unknown}")]
    return []


def _check_facts(wf: Workflow) -> Problems:
    out: Problems = []
    names = {i.name for i in wf.identifiers}
    used: set[str] = set()
    for _, view in wf.views():
        used |= {f.field for f in view.needed_facts()}
    for i, fact in enumerate(wf.facts):
        where = f"facts.{i}"
        if fact.name in names or not SLUG.match(fact.name):
            out.append((f"{where}.name", f"{fact.name!r} is a duplicate or not a slug"))
        names.add(fact.name)
        if not wf.has_field(fact.field):
            out.append((f"{where}.field", f"unknown field {fact.field!r}"))
        elif fact.field not in used:
            out.append((f"{where}.field", "no step argument or rule uses it, so no one asks"))
    return out


def _check_rules(wf: Workflow) -> Problems:
    out: Problems = []
    for i, step in enumerate(wf.steps):
        for group in ("preconditions", "optional_preconditions"):
            for j, pre in enumerate(getattr(step, group)):
                out += _check_rule(wf, step, pre, f"steps.{i}.{group}.{j}")
    return out


_HANDS_OVER = re.compile(
    r"\b(transfer|hand(s|ed)? (it |them |the \w+ )?(over|off)|hand-off|handoff)", re.I
)
_DECLINES = re.compile(r"\b(declin\w*|refus\w*|reject\w*)\b", re.I)


def _check_outcome_text(pre: Precondition, where: str) -> Problems:
    """A rule that hands the user over must say so, and not tell the agent to decline:
    the agent acts on the text, the reward on `on_fail`."""
    if pre.on_fail != "transfer":
        return []
    declines = _DECLINES.search(pre.rule)
    if declines or not _HANDS_OVER.search(pre.rule):
        said = f"tells the agent to {declines.group(0)!r}" if declines else "never says to transfer"
        return [
            (
                f"{where}.rule",
                f"on_fail: transfer wants a hand-off when the rule fails, but its text {said}: "
                "say in the rule that the agent transfers the user (e.g. '... transfer the "
                "customer to a human agent'), or drop `on_fail: transfer` to refuse",
            )
        ]
    return []


def _check_rule(wf: Workflow, step: Step, pre: Precondition, where: str) -> Problems:
    out: Problems = _check_outcome_text(pre, where)
    if pre.insist:
        field = wf.resolve(pre.field, step)
        if pre.related is not None or not field.startswith(f"{REQUEST}."):
            out.append((f"{where}.insist", "a user insists only on a request detail's value"))
        for k, text in enumerate(pre.insist):
            if field not in PLACEHOLDER.findall(text):
                out.append((f"{where}.insist.{k}", f"must say the value: put {{{field}}} in it"))
    rel = pre.related
    if rel is None:
        return out
    if rel.table not in wf.tables:
        return [*out, (f"{where}.related.table", f"unknown table {rel.table!r}")]
    columns = wf.tables[rel.table].columns
    for column, source in rel.match.items():
        if column not in columns:
            out.append((f"{where}.related.match", f"{column!r} is not a column of {rel.table}"))
        elif not wf.has_field(source):
            out.append((f"{where}.related.match.{column}", f"unknown field {source!r}"))
    for column, value in rel.where.items():
        if column not in columns:
            out.append((f"{where}.related.where", f"{column!r} is not a column of {rel.table}"))
            continue
        out += _never_takes(
            columns[column],
            value,
            f"{rel.table}.{column}",
            f"{where}.related.where.{column}",
            "no row ever counts",
        )
    return out + _check_listing(wf, step, pre, where)


def _check_listing(wf: Workflow, step: Step, pre: Precondition, where: str) -> Problems:
    """A related-rows rule's step must list the rows it counts, every one of them, and
    answer an empty list when there are none; else no refusal task can show its evidence."""
    rel = pre.related
    assert rel is not None
    tool = step.tool
    read = tables_read(wf, tool.sql[-1])
    step_where = where.rsplit(".", 2)[0]
    if rel.table not in read:
        return [
            (
                f"{where}.related.table",
                f"step {step.id!r} lists {sorted(read) or 'no table'}, not {rel.table}: the agent "
                f"could never see the {rel.table} rows this rule counts; put the rule on a step "
                f"whose tool lists {rel.table} rows",
            )
        ]
    out: Problems = []
    shown = output_columns(wf, tool) or []
    missing = [c for c in rel.shown_columns() if c not in shown]
    if missing:
        out.append(
            (
                f"{step_where}.tool.sql",
                f"the listing does not return {missing}, which the rule {pre.id!r} compares: add "
                "them to its last SELECT, so the agent sees why a row counts",
            )
        )
    if tool.returns != "rows":
        out.append(
            (
                f"{step_where}.tool.returns",
                f"returns: {tool.returns} shows at most one row, and the rule {pre.id!r} is about "
                "every matching row: use `returns: rows`",
            )
        )
    if tool.require_rows:
        out.append(
            (
                f"{step_where}.tool.require_rows",
                f"an empty list is a normal answer for the rule {pre.id!r} (no such row), but "
                "require_rows: true (the default) makes it a not_found error: set "
                "`require_rows: false`",
            )
        )
    return out


def _schema(wf: Workflow) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    for name, table in wf.tables.items():
        db.execute(f'CREATE TABLE "{name}" ({", ".join(f"{c!r}" for c in table.columns)})')
    return db


def output_columns(wf: Workflow, tool: ToolDef) -> list[str] | None:
    """Columns of the tool's last statement (a SELECT), or None when it returns none."""
    if tool.returns == "ok":
        return None
    db = _schema(wf)
    try:
        cursor = db.execute(tool.sql[-1], dict.fromkeys(tool.params))
        return [d[0] for d in cursor.description] if cursor.description else None
    except sqlite3.Error:
        return None  # workflow_checks names SQL that does not compile
    finally:
        db.close()


def tables_read(wf: Workflow, statement: str) -> set[str]:
    """The workflow tables a statement reads (SQLite's authorizer sees every read)."""
    read: set[str] = set()

    def note(action: int, table: str | None, *_: str | None) -> int:
        if action == sqlite3.SQLITE_READ and table in wf.tables:
            read.add(table)
        return sqlite3.SQLITE_OK

    db = _schema(wf)
    db.set_authorizer(note)
    try:
        db.execute(f"EXPLAIN {statement}")
    except sqlite3.Error:
        pass  # workflow_checks names SQL that does not compile
    finally:
        db.close()
    return read


def _check_tells(wf: Workflow) -> Problems:
    out: Problems = []
    for i, step in enumerate(wf.steps):
        if not step.tell:
            continue
        where = f"steps.{i}.tell"
        if step.tool.kind != "action":
            out.append((where, "only an action step has a changed record to tell about"))
            continue
        columns = output_columns(wf, step.tool)
        for k, tell in enumerate(step.tell):
            if columns is None or tell.column not in columns:
                out.append(
                    (
                        f"{where}.{k}.column",
                        f"{tell.column!r} is not a column the tool's last SELECT returns "
                        f"({columns or 'none'})",
                    )
                )
    return out


def _check_intents(wf: Workflow, check_workflow: Callable[[Workflow], Problems]) -> Problems:
    out: Problems = []
    ids = {""}
    tools = {s.tool.name: s.tool for s in wf.steps}
    owners = {s.tool.name: f"steps.{i}.tool" for i, s in enumerate(wf.steps)}
    rules = {p.id: (s.id, p) for s, p, _ in wf.all_preconditions()}
    for k, intent in enumerate(wf.intents):
        where = f"intents.{k}"
        if intent.id in ids or not SLUG.match(intent.id):
            out.append((f"{where}.id", f"{intent.id!r} is a duplicate or not a slug"))
        ids.add(intent.id)
        view = wf.for_intent(intent.id)
        alone = view.model_copy(update={"intents": [], "facts": view.needed_facts()})
        for path, message in check_workflow(alone):
            shown = f"{where}.{path}" if path.startswith(("steps", "phrasing")) else path
            out.append((shown, f"in intent {intent.id!r}: {message}"))
        for i, step in enumerate(intent.steps):
            other = tools.setdefault(step.tool.name, step.tool)
            owners.setdefault(step.tool.name, f"{where}.steps.{i}.tool")
            if other != step.tool:
                mine, theirs = step.tool.model_dump(), other.model_dump()
                differ = [k for k in mine if mine[k] != theirs[k]]
                out.append(
                    (
                        f"{where}.steps.{i}.tool",
                        f"{step.tool.name!r} differs in {differ} from the tool of that name at "
                        f"{owners[step.tool.name]}: one name is one tool; share it with a YAML "
                        "anchor (&name / *name), or rename one",
                    )
                )
        for step, pre, _ in view.all_preconditions():
            step_id, known = rules.setdefault(pre.id, (step.id, pre))
            if known != pre or step_id != step.id:
                out.append(
                    (
                        f"{where}.steps",
                        f"precondition id {pre.id!r} is used by another intent for another "
                        "rule or step; share the step (a YAML anchor) or rename it",
                    )
                )
    handoffs = 1 + len(wf.desks)
    shared = wf.other_intent_tools == "always"
    if shared and wf.intents and len(tools) + handoffs > MAX_TASK_TOOLS:
        out.append(
            (
                "intents",
                f"{len(tools) + handoffs} tools with the hand-off tools; at most "
                f"{MAX_TASK_TOOLS}: every task holds every intent's step tools; set "
                "`other_intent_tools: when_room` to count an intent's tools only in its own "
                "tasks",
            )
        )
    return out
