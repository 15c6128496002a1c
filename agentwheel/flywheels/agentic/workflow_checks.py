"""Cross-field checks of a workflow: what the schema alone cannot say (a reference to an
earlier table, SQL that compiles on the declared tables, a precondition its generator can
both satisfy and violate, phrasing that names every tool argument).

Each check returns (field path, message) pairs; `parse_workflow` reports the first.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import date
from functools import lru_cache

from pydantic import ValidationError

from agentwheel.core.task import MAX_TOOL_PARAMETERS
from agentwheel.flywheels.agentic.construct_checks import check_constructs
from agentwheel.flywheels.agentic.generator_values import value_types
from agentwheel.flywheels.agentic.workflow import (
    HANDOFF_TABLE,
    IDENT,
    MAX_TASK_TOOLS,
    MIN_TASK_TOOLS,
    PLACEHOLDER,
    REQUEST,
    SLUG,
    ColumnGen,
    Precondition,
    Step,
    Workflow,
)
from agentwheel.flywheels.agentic.workflow_values import (
    check_compared_fields,
    check_sentences,
    check_threshold,
)
from agentwheel.flywheels.agentic.world import can_hold_and_fail

# Faker providers whose output depends only on the seed (no "now"-relative dates).
FAKER_PROVIDERS = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "email",
        "free_email",
        "company",
        "company_email",
        "city",
        "street_address",
        "address",
        "postcode",
        "state",
        "country",
        "phone_number",
        "job",
        "user_name",
        "catch_phrase",
        "color_name",
        "word",
        "license_plate",
        "iban",
        "bban",
    }
)

_FIELD = re.compile(rf"^{IDENT}\.{IDENT}$")
_SQL_PARAMETER = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


def check_workflow(wf: Workflow) -> list[tuple[str, str]]:
    """Every problem of the first failing group, as (field path, message) pairs.

    Groups run in order (tables, request details, steps, identifiers, tools, phrasing,
    the optional constructs of `construct_checks`)
    because each later group relies on the earlier ones being sound.
    """
    for check in (
        _check_tables,
        _check_request_fields,
        _check_steps,
        _check_identifiers,
        _check_tools,
        _check_phrasing,
        check_sentences,
        _check_constructs,
    ):
        problems = check(wf)
        if problems:
            return problems
    return []


def _check_constructs(wf: Workflow) -> list[tuple[str, str]]:
    return check_constructs(wf, check_workflow)


def _check_generator(
    wf: Workflow, gen: ColumnGen, where: str, table: str | None, earlier: list[str]
) -> list[tuple[str, str]]:
    if not gen.kind:
        return [(where, "set exactly one generator (faker, pattern, choice, int, money, ...)")]
    out: list[tuple[str, str]] = []
    if gen.faker is not None and gen.faker not in FAKER_PROVIDERS:
        out.append(
            (
                f"{where}.faker",
                f"unknown or non-deterministic Faker provider {gen.faker!r}: use one of "
                f"{', '.join(sorted(FAKER_PROVIDERS))}",
            )
        )
    if gen.choice is not None:
        if not gen.choice:
            out.append((f"{where}.choice", "needs at least one value"))
        if gen.weights is not None and len(gen.weights) != len(gen.choice):
            out.append((f"{where}.weights", "needs one weight per choice"))
        elif gen.weights is not None and (min(gen.weights) < 0 or sum(gen.weights) <= 0):
            out.append((f"{where}.weights", "weights must be >= 0 with a positive sum"))
    for key in ("int_range", "money"):
        bounds = getattr(gen, key)
        if bounds is not None and bounds[0] > bounds[1]:
            out.append((f"{where}.{'int' if key == 'int_range' else key}", "lower bound > upper"))
    if gen.date is not None:
        try:
            lo, hi = (date.fromisoformat(d) for d in gen.date)
            if lo > hi:
                out.append((f"{where}.date", "start is after end"))
        except ValueError as exc:
            out.append((f"{where}.date", f"dates must be ISO (YYYY-MM-DD): {exc}"))
    if gen.ref is not None:
        if not _FIELD.match(gen.ref):
            out.append((f"{where}.ref", "must be table.column"))
        else:
            ref_table, _, ref_col = gen.ref.partition(".")
            names = list(wf.tables)
            if ref_table not in names:
                out.append(
                    (
                        f"{where}.ref",
                        f"no table {ref_table!r} (tables: {', '.join(names)}): name one of them",
                    )
                )
            elif table is not None and names.index(ref_table) >= names.index(table):
                out.append(
                    (
                        f"{where}.ref",
                        f"{ref_table!r} is not an earlier table: a ref points at a table "
                        f"defined above its own; move {ref_table!r} above {table!r}",
                    )
                )
            elif ref_table in wf.tables and wf.tables[ref_table].key != ref_col:
                out.append((f"{where}.ref", f"must name the key column of {ref_table!r}"))
    for key in ("email_of", "username_of"):
        source = getattr(gen, key)
        if source is not None and source not in earlier:
            out.append((f"{where}.{key}", f"{source!r} is not an earlier column of this row"))
    if gen.say and gen.choice is not None:
        unknown = [k for k in gen.say if k not in {str(c) for c in gen.choice}]
        if unknown:
            out.append((f"{where}.say", f"names values that are not choices: {unknown}"))
    return out


def _check_tables(wf: Workflow) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if wf.user_table is not None and wf.user_table not in wf.tables:
        out.append(("user_table", f"unknown table {wf.user_table!r}"))
    elif wf.name_column is not None and (
        wf.user_table is None or wf.name_column not in wf.tables[wf.user_table].columns
    ):
        out.append(("name_column", "must be a column of user_table"))
    for name, table in wf.tables.items():
        where = f"tables.{name}"
        if not SLUG.match(name) or name in (REQUEST, HANDOFF_TABLE):
            out.append((where, f"table name {name!r} is reserved or not a slug"))
        lo, hi = table.row_range
        if lo < 0 or lo > hi:
            out.append((f"{where}.rows", "needs 0 <= min <= max"))
        if table.key is not None and table.key not in table.columns:
            out.append((f"{where}.key", f"{table.key!r} is not a column"))
        for group_i, group in enumerate(table.unique):
            named = group if isinstance(group, list) else [*group.columns, *group.when]
            bad = [c for c in named if c not in table.columns]
            if bad:
                out.append((f"{where}.unique.{group_i}", f"unknown columns {bad}"))
        earlier: list[str] = []
        for column, gen in table.columns.items():
            cwhere = f"{where}.columns.{column}"
            if not SLUG.match(column):
                out.append((cwhere, "column names must be lower-case slugs"))
            if gen is None:
                if hi > 0:
                    out.append((cwhere, "needs a generator: the table starts with rows"))
            else:
                out += _check_generator(wf, gen, cwhere, name, earlier)
            earlier.append(column)
    return out


def _check_request_fields(wf: Workflow) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, gen in wf.request_fields.items():
        where = f"request_fields.{name}"
        out += _check_generator(wf, gen, where, None, [])
        if gen.ref is not None or gen.email_of is not None or gen.username_of is not None:
            out.append((where, "request details cannot reference tables or other fields"))
    return out


def _check_precondition(
    wf: Workflow, step: Step, pre: Precondition, where: str
) -> list[tuple[str, str]]:
    if pre.related is not None:
        return []  # a rule over other rows: see construct_checks
    if pre.any_of:
        return [
            problem
            for k, alt in enumerate(pre.alternatives())
            for problem in _check_precondition(wf, step, alt, f"{where}.any_of.{k}")
        ]
    if step.entity is None and "." not in pre.field:
        return [
            (
                f"{where}.field",
                f"{pre.field!r} is a bare column name but step {step.id!r} has no entity: add "
                f"`entity: <table>` to the step, or write the field as table.{pre.field}",
            )
        ]
    out: list[tuple[str, str]] = []
    field = wf.resolve(pre.field, step)
    if not wf.has_field(field):
        return [(f"{where}.field", unknown_field(wf, field))]
    table, _, column = field.partition(".")
    if table != REQUEST and wf.tables[table].key == column:
        out.append((f"{where}.field", "a precondition cannot constrain a key column"))
    if (pre.value is None) == (pre.value_from is None):
        out.append((where, "set exactly one of value and value_from"))
    if pre.value_from is not None and pre.op in ("in", "not_in"):
        out.append(
            (
                f"{where}.value_from",
                f"op {pre.op!r} tests membership in a literal list, not in another field: "
                f"write `value: [a, b, ...]` instead of value_from, or use another op "
                "(eq, ne, lt, le, gt, ge) to compare with a field",
            )
        )
    elif pre.op in ("in", "not_in") and pre.value is not None and not isinstance(pre.value, list):
        out.append((f"{where}.value", f"op {pre.op!r} needs a list value, e.g. [a, b]"))
    if pre.op not in ("in", "not_in") and isinstance(pre.value, list):
        out.append((f"{where}.value", f"op {pre.op!r} needs a scalar value"))
    if pre.value_from is not None and pre.op not in ("in", "not_in"):
        source = wf.resolve(pre.value_from, step)
        if not wf.has_field(source):
            out.append((f"{where}.value_from", unknown_field(wf, source)))
        elif any(
            wf.resolve(p.field, s) == source and p.value_from is not None
            for s, p, _ in wf.all_preconditions()
        ):
            out.append((f"{where}.value_from", f"{source!r} is itself bounded by another field"))
        else:
            out += check_compared_fields(wf, field, source, where)
    if not out:
        out += check_threshold(wf, field, pre, where)
    if not out:
        gen = wf.generator(field)
        if gen is not None and pre.value_from is None and not can_hold_and_fail(wf, field, pre):
            out.append(
                (
                    f"{where}.value",
                    f"the generator of {field!r} cannot both satisfy and violate it: every "
                    "generated value passes (or every one fails), so the rule never decides "
                    "anything; move the threshold inside the generated values",
                )
            )
    return out


def unknown_field(wf: Workflow, field: str) -> str:
    """The message for a field no table or request detail has, naming the ones there are."""
    table, _, _ = field.partition(".")
    if table == REQUEST:
        known = [f"{REQUEST}.{n}" for n in wf.request_fields]
    elif table in wf.tables:
        known = [f"{table}.{c}" for c in wf.tables[table].columns]
    else:
        return f"unknown field {field!r}: no table {table!r} (tables: {', '.join(wf.tables)})"
    return f"unknown field {field!r}; known: {', '.join(known) or 'none'}"


def _check_steps(wf: Workflow) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    kinds = [s.tool.kind for s in wf.steps]
    if "query" not in kinds or "action" not in kinds:
        out.append(("steps", "needs at least one query step and one action step"))
    ids: set[str] = set()
    pre_ids: set[str] = set()
    for i, step in enumerate(wf.steps):
        where = f"steps.{i}"
        if step.id in ids:
            out.append((f"{where}.id", f"duplicate step id {step.id!r}"))
        ids.add(step.id)
        if step.entity is not None and step.entity not in wf.tables:
            out.append((f"{where}.entity", f"unknown table {step.entity!r}"))
            continue
        params = set(step.tool.params)
        if set(step.args) != params:
            out.append(
                (f"{where}.args", f"must bind exactly the tool's parameters {sorted(params)}")
            )
        param_defs = step.tool.param_defs()
        for arg, source in step.args.items():
            field = wf.resolve(source, step)
            if step.entity is None and "." not in source:
                out.append(
                    (
                        f"{where}.args.{arg}",
                        f"{source!r} is a bare column name but the step has no entity: add "
                        f"`entity: <table>` to the step, or write table.{source}",
                    )
                )
            elif not wf.has_field(field):
                out.append((f"{where}.args.{arg}", unknown_field(wf, field)))
            elif arg in param_defs and param_defs[arg].type not in value_types(wf, field):
                out.append(
                    (
                        f"{where}.args.{arg}",
                        f"parameter type {param_defs[arg].type!r} does not fit {field!r} "
                        f"(values are {sorted(value_types(wf, field))})",
                    )
                )
        for group in ("preconditions", "optional_preconditions"):
            for j, pre in enumerate(getattr(step, group)):
                pwhere = f"{where}.{group}.{j}"
                if pre.id in pre_ids or not SLUG.match(pre.id):
                    out.append(
                        (f"{pwhere}.id", f"precondition id {pre.id!r} is duplicate or not a slug")
                    )
                pre_ids.add(pre.id)
                out += _check_precondition(wf, step, pre, pwhere)
        if step.tool.kind == "action" and (step.preconditions or step.optional_preconditions):
            out.append((where, "preconditions belong on query steps, checked before any action"))
    first_action = kinds.index("action") if "action" in kinds else len(kinds)
    if "query" in kinds[first_action:]:
        out.append(("steps", "query steps must all come before the action steps"))
    if not any(not optional for _, _, optional in wf.all_preconditions()):
        out.append(("steps", "declare at least one (non-optional) precondition"))
    return out


def _check_identifiers(wf: Workflow) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    bound = {wf.resolve(src, step) for step in wf.steps for src in step.args.values()}
    names: set[str] = set()
    for i, ident in enumerate(wf.identifiers):
        where = f"identifiers.{i}"
        if ident.name in names or not SLUG.match(ident.name):
            out.append((f"{where}.name", f"{ident.name!r} is duplicate or not a slug"))
        names.add(ident.name)
        if ident.field.startswith(f"{REQUEST}."):
            out.append(
                (
                    f"{where}.field",
                    f"{ident.field!r} is a request detail, not a table column: an identifier "
                    "names a record's column; list a detail the user must give under `facts`",
                )
            )
        elif not wf.has_field(ident.field):
            out.append((f"{where}.field", unknown_field(wf, ident.field)))
        elif ident.field not in bound:
            out.append((f"{where}.field", "the user gives it, so some step argument must use it"))
    for i, fact in enumerate(wf.facts):
        # Checked before the phrasing, which would otherwise blame the intents for it.
        if not wf.has_field(fact.field):
            out.append((f"facts.{i}.field", unknown_field(wf, fact.field)))
    if wf.transfer.identifier not in names:
        out.append(("transfer.identifier", f"{wf.transfer.identifier!r} is not an identifier"))
    kinds: set[str] = set()
    for i, oos in enumerate(wf.out_of_scope):
        if not SLUG.match(oos.kind) or oos.kind in kinds:
            out.append((f"out_of_scope.{i}.kind", f"{oos.kind!r} is duplicate or not a slug"))
        kinds.add(oos.kind)
    return out


@lru_cache(maxsize=256)
def _schema_db(tables: tuple[tuple[str, tuple[str, ...]], ...]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", check_same_thread=False)
    for name, columns in tables:
        db.execute(f'CREATE TABLE "{name}" ({", ".join(f"{c!r}" for c in columns)})')
    return db


def _check_tools(wf: Workflow) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    schema = tuple((n, tuple(t.columns)) for n, t in wf.tables.items())
    db = _schema_db((*schema, (HANDOFF_TABLE, tuple(wf.handoff_columns()))))
    located = [(f"steps.{i}.tool", s.tool) for i, s in enumerate(wf.steps)]
    if any(i.name == wf.transfer.identifier for i in wf.identifiers):
        located.append(("transfer", wf.transfer_spec()))
        located += [(f"desks.{i}", wf.transfer_spec(d.name)) for i, d in enumerate(wf.desks)]
    located += [(f"extra_tools.{i}", t) for i, t in enumerate(wf.extra_tools)]
    seen: set[str] = set()
    for where, tool in located:
        if tool.name in seen:
            out.append((f"{where}.name", f"duplicate tool name {tool.name!r}"))
        seen.add(tool.name)
        if len(tool.params) > MAX_TOOL_PARAMETERS:
            out.append((f"{where}.params", f"at most {MAX_TOOL_PARAMETERS} parameters"))
        try:
            tool.spec()
        except ValidationError as exc:
            out.append((where, exc.errors()[0]["msg"]))
        for k, statement in enumerate(tool.sql):
            unbound = sorted(set(_SQL_PARAMETER.findall(statement)) - set(tool.params))
            if unbound:
                out.append((f"{where}.sql.{k}", f"placeholders without parameters: {unbound}"))
                continue
            try:
                db.execute(f"EXPLAIN {statement}", dict.fromkeys(tool.params))
            except sqlite3.Error as exc:
                out.append((f"{where}.sql.{k}", f"does not compile on the tables: {exc}"))
    step_tools = len(wf.steps) + 1 + len(wf.desks)
    if step_tools > MAX_TASK_TOOLS:
        out.append(
            (
                "steps",
                f"{step_tools} tools with the hand-off tools; a task has at most "
                f"{MAX_TASK_TOOLS} (step tools, the transfer tool and each desk's)",
            )
        )
    if step_tools + len(wf.extra_tools) < MIN_TASK_TOOLS:
        out.append(("extra_tools", f"a task needs at least {MIN_TASK_TOOLS} tools; add one"))
    return out


def _check_phrasing(wf: Workflow) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    ident_fields = {i.field for i in wf.identifiers}
    texts: list[tuple[str, str]] = [
        (f"phrasing.intents.{i}", t) for i, t in enumerate(wf.phrasing.intents)
    ]
    texts += [(f"phrasing.reasons.{i}", t) for i, t in enumerate(wf.phrasing.reasons)]
    for i, oos in enumerate(wf.out_of_scope):
        texts += [(f"out_of_scope.{i}.requests.{j}", t) for j, t in enumerate(oos.requests)]
    for i, step in enumerate(wf.steps):
        for group in ("preconditions", "optional_preconditions"):
            for j, pre in enumerate(getattr(step, group)):
                where = f"steps.{i}.{group}.{j}"
                texts += [(f"{where}.false_claims.{k}", t) for k, t in enumerate(pre.false_claims)]
                texts += [(f"{where}.cue", pre.cue)]
                texts += [(f"{where}.insist.{k}", t) for k, t in enumerate(pre.insist)]
    for field in wf.phrased_request_args():
        gen = wf.generator(field)
        for value, said in (gen.say if gen is not None else {}).items():
            for phrase in [said] if isinstance(said, str) else said:
                if value not in phrase:
                    out.append(
                        (
                            f"request_fields.{field.partition('.')[2]}.say.{value}",
                            f"{phrase!r} must contain {value!r}: the tool argument is traced "
                            "to the user's words",
                        )
                    )
        in_intents = all(field in PLACEHOLDER.findall(t) for t in wf.phrasing.intents)
        in_reasons = bool(wf.phrasing.reasons) and all(
            field in PLACEHOLDER.findall(t) for t in wf.phrasing.reasons
        )
        if not (in_intents or in_reasons):
            out.append(
                (
                    "phrasing",
                    f"{{{field}}} is a tool argument: every intent or every reason must say it",
                )
            )
    for where, text in texts:
        for field in PLACEHOLDER.findall(text):
            if not wf.has_field(field):
                out.append((where, f"placeholder {{{field}}} names an unknown field"))
            elif field in ident_fields and where.startswith("phrasing."):
                out.append((where, f"{{{field}}} is an identifier; ids are added separately"))
    return out
