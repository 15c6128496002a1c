"""Workflow specs: a linear standard operating procedure, written in YAML, that the
expanders turn into behavior trees.

A workflow declares
- the domain and the agent's background text;
- the tables it acts on, each column with a seeded generator (Faker provider, pattern,
  choice, numeric range, reference to another table, ...);
- the happy path as ordered steps, each with its tool (≤ 3 scalar parameters, query or
  action, parameterized SQL) and the declarative preconditions the step relies on;
- optional preconditions (a pool the expander may add to make trees deeper);
- the identifiers the user must provide, the request details they state (amounts, dates),
- out-of-scope request kinds that need a transfer to a human, and the transfer tool's
  identifier;
- phrasing material (intent paraphrases, reasons) for the user's opening request, and
  optionally how a user describes a record whose id they lack (`records`).

Fields are named `table.column` or `request.<name>`; inside a step's preconditions a bare
column name refers to the step's `entity` table.

`load_workflow` raises `WorkflowError` naming the file and the field path
(`steps.1.preconditions.0.field`); `load_workflows` turns those into counted rejections.
"""

from __future__ import annotations

import random
import re
import sqlite3
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentwheel.core.resources import bundled_data
from agentwheel.core.task import MAX_TOOL_PARAMETERS, SqlToolImpl, ToolKind, ToolSpec
from agentwheel.flywheels.agentic.rejection import Rejection

Scalar = str | int | float
Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in"]
ParamType = Literal["string", "integer", "number"]
ValueFormat = Literal["text", "money", "int", "date"]

REQUEST = "request"
HANDOFF_TABLE = "handoffs"
MIN_TASK_TOOLS, MAX_TASK_TOOLS = 3, 5
BUNDLED_WORKFLOWS = bundled_data("workflows")

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

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FIELD = re.compile(rf"^{_IDENT}\.{_IDENT}$")
PLACEHOLDER = re.compile(rf"\{{({_IDENT}\.{_IDENT})\}}")
_SQL_PARAMETER = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ColumnGen(_Strict):
    """How to generate one column (or request detail). Exactly one generator key is set.

    - `faker`: a seed-deterministic Faker provider (`name`, `email`, `city`, ...);
    - `pattern`: `#` = digit, `?` = upper-case letter (`W#######`, `??-####`);
    - `choice` (+ optional `weights`): one of the listed values;
    - `int` / `money`: uniform in `[lo, hi]` (money has two decimals);
    - `date`: an ISO date uniform in `[start, end]` (fixed bounds, never "today");
    - `ref`: the key of a row of an earlier table (`customers.customer_id`);
    - `email_of` / `username_of`: derived from an earlier name column of the same row;
    - `value`: a constant.

    `format` says how the value is written in user text; `say` maps choice values to the
    words a user would use (a list gives paraphrases).
    """

    faker: str | None = None
    pattern: str | None = None
    choice: list[Scalar] | None = None
    weights: list[float] | None = None
    int_range: tuple[int, int] | None = Field(default=None, alias="int")
    money: tuple[float, float] | None = None
    date: tuple[str, str] | None = None
    ref: str | None = None
    email_of: str | None = None
    username_of: str | None = None
    value: Scalar | None = None
    format: ValueFormat = "text"
    say: dict[str, str | list[str]] = Field(default_factory=dict)

    @property
    def kind(self) -> str:
        keys = (
            *("faker", "pattern", "choice", "int_range", "money", "date", "ref"),
            *("email_of", "username_of", "value"),
        )
        set_keys = [k for k in keys if getattr(self, k) is not None]
        return set_keys[0] if len(set_keys) == 1 else ""

    @property
    def numeric(self) -> bool:
        if self.int_range is not None or self.money is not None:
            return True
        if self.choice:
            return all(isinstance(c, int | float) for c in self.choice)
        return isinstance(self.value, int | float)


class ParamDef(_Strict):
    type: ParamType = "string"
    description: str = ""
    enum: list[Scalar] | None = None


class ToolDef(_Strict):
    """A tool and its SQLite implementation (see `SqlToolImpl`)."""

    name: str
    description: str
    kind: ToolKind
    params: dict[str, ParamType | ParamDef] = Field(default_factory=dict)
    sql: list[str] = Field(min_length=1)
    returns: Literal["rows", "row", "ok"] = "rows"
    require_rows: bool = True

    def param_defs(self) -> dict[str, ParamDef]:
        return {
            n: p if isinstance(p, ParamDef) else ParamDef(type=p) for n, p in self.params.items()
        }

    def spec(self) -> ToolSpec:
        properties: dict[str, Any] = {}
        for name, p in self.param_defs().items():
            prop: dict[str, Any] = {"type": p.type}
            if p.description:
                prop["description"] = p.description
            if p.enum is not None:
                prop["enum"] = list(p.enum)
            properties[name] = prop
        schema = {"type": "object", "properties": properties, "required": list(self.params)}
        return ToolSpec(
            name=self.name, description=self.description, parameters=schema, kind=self.kind
        )

    def impl(self) -> SqlToolImpl:
        return SqlToolImpl(sql=list(self.sql), returns=self.returns, require_rows=self.require_rows)


class Precondition(_Strict):
    """A condition a step relies on: `field op value` (or `field op <value of value_from>`).

    `rule` is the policy sentence the agent reads (a condition, not a procedure);
    `false_claims` are things a pushing user may falsely assert after a refusal;
    `cue` is an optional hint for the user's situation when the condition fails.
    """

    id: str
    field: str
    op: Op
    value: Scalar | list[Scalar] | None = None
    value_from: str | None = None
    rule: str
    false_claims: list[str] = Field(default_factory=list)
    cue: str = ""

    def threshold(self, context: dict[str, Any]) -> Any:
        return context[self.value_from] if self.value_from is not None else self.value

    def holds(self, actual: Any, threshold: Any) -> bool:
        return compare(actual, self.op, threshold)


def compare(actual: Any, op: Op, threshold: Any) -> bool:
    """Evaluate `actual op threshold`; incomparable types never satisfy an ordering."""
    if op == "eq":
        return bool(actual == threshold)
    if op == "ne":
        return bool(actual != threshold)
    if op == "in":
        return actual in threshold
    if op == "not_in":
        return actual not in threshold
    try:
        if op == "lt":
            return bool(actual < threshold)
        if op == "le":
            return bool(actual <= threshold)
        if op == "gt":
            return bool(actual > threshold)
        return bool(actual >= threshold)
    except TypeError:
        return False


class TableSpec(_Strict):
    """A table of the world: row count range, key column, and one generator per column.

    A column's generator may be null only in a table that starts empty (`rows: 0`), e.g.
    a log the action tools write to. `unique` lists column groups no two rows share.
    """

    rows: tuple[int, int] | int = (4, 8)
    key: str | None = None
    columns: dict[str, ColumnGen | None] = Field(min_length=1)
    unique: list[list[str]] = Field(default_factory=list)

    @property
    def row_range(self) -> tuple[int, int]:
        return (self.rows, self.rows) if isinstance(self.rows, int) else self.rows


class Step(_Strict):
    """One happy-path step: its tool, where each argument comes from, what it relies on."""

    id: str
    tool: ToolDef
    entity: str | None = None
    args: dict[str, str] = Field(default_factory=dict)
    preconditions: list[Precondition] = Field(default_factory=list)
    optional_preconditions: list[Precondition] = Field(default_factory=list)


class Identifier(_Strict):
    """Something the user knows and must give (`order_id` ↔ "order number")."""

    name: str
    field: str
    spoken: str
    aliases: list[str] = Field(default_factory=list)


class OutOfScope(_Strict):
    """A request kind this workflow's agent may not handle: it transfers to a human."""

    kind: str
    rule: str
    requests: list[str] = Field(min_length=2)


class Transfer(_Strict):
    tool: str = "transfer_to_human"
    identifier: str
    description: str = (
        "Hand the conversation to a human agent, identified by the customer's record."
    )


class Phrasing(_Strict):
    """Request material. `action` names what the workflow does ("cancel an order"); intents
    are the user's verb phrases for it ("cancel my order", "call off the order I placed");
    reasons are clauses ("my plans changed")."""

    action: str
    intents: list[str] = Field(min_length=3)
    reasons: list[str] = Field(default_factory=list)
    # How a user points at one of their records without its id, for the lookup operator
    # ("it's the {value} I ordered"); `{value}` is the describing column's value.
    records: list[str] = Field(default_factory=list)

    @field_validator("records")
    @classmethod
    def _records_name_the_value(cls, records: list[str]) -> list[str]:
        for text in records:
            if "{value}" not in text:
                raise ValueError(f"{text!r} does not contain {{value}}")
        return records


class Workflow(_Strict):
    id: str
    domain: str
    title: str
    background: str
    user_table: str | None = None
    name_column: str | None = None
    tables: dict[str, TableSpec]
    request_fields: dict[str, ColumnGen] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=2)
    identifiers: list[Identifier] = Field(min_length=1)
    out_of_scope: list[OutOfScope] = Field(min_length=1)
    transfer: Transfer
    extra_tools: list[ToolDef] = Field(default_factory=list)
    phrasing: Phrasing
    source: str = ""

    @field_validator("id", "domain")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError(f"{value!r} must be a lower-case slug ([a-z][a-z0-9_]*)")
        return value

    # ---- lookups used by the expander and the world builder ----

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def resolve(self, name: str, step: Step | None = None) -> str:
        """A field as `table.column` / `request.name`; bare names use the step's entity."""
        if "." in name or step is None or step.entity is None:
            return name
        return f"{step.entity}.{name}"

    def generator(self, field: str) -> ColumnGen | None:
        table, _, column = field.partition(".")
        if table == REQUEST:
            return self.request_fields.get(column)
        spec = self.tables.get(table)
        return spec.columns.get(column) if spec is not None else None

    def has_field(self, field: str) -> bool:
        table, _, column = field.partition(".")
        if table == REQUEST:
            return column in self.request_fields
        return table in self.tables and column in self.tables[table].columns

    def identifier(self, name: str) -> Identifier:
        return next(i for i in self.identifiers if i.name == name)

    def transfer_spec(self) -> ToolDef:
        ident = self.identifier(self.transfer.identifier)
        return ToolDef(
            name=self.transfer.tool,
            description=self.transfer.description,
            kind="action",
            params={ident.name: ParamDef(type="string", description=f"The {ident.spoken}.")},
            sql=[f"INSERT INTO {HANDOFF_TABLE} (reference) VALUES (:{ident.name})"],
            returns="ok",
        )

    def all_tools(self) -> list[ToolDef]:
        return [*(s.tool for s in self.steps), self.transfer_spec(), *self.extra_tools]

    def request_args(self) -> list[str]:
        """Request details (`request.x`) that some step passes to its tool."""
        fields = [self.resolve(src, s) for s in self.steps for src in s.args.values()]
        return list(dict.fromkeys(f for f in fields if f.startswith(f"{REQUEST}.")))

    def all_preconditions(self) -> Iterator[tuple[Step, Precondition, bool]]:
        """(step, precondition, optional?) in happy-path order."""
        for step in self.steps:
            for pre in step.preconditions:
                yield step, pre, False
            for pre in step.optional_preconditions:
                yield step, pre, True


class WorkflowError(Exception):
    """A workflow file that cannot be used, with the file and the field path to blame."""

    def __init__(self, file: str, field: str, message: str):
        self.file, self.field, self.message = file, field, message
        super().__init__(f"{file}: {field}: {message}" if field else f"{file}: {message}")


def _field_path(data: Any, loc: Iterable[int | str]) -> str:
    """A validation error's location as a path into the YAML, without pydantic's union
    tags (`tuple[int, int]`, `str`, `ColumnGen`): parts that index the data are kept,
    and so is a missing field's name."""
    parts: list[str] = []
    node = data
    for part in loc:
        indexes = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if indexes:
            node = node[part]  # type: ignore[index]
        elif not isinstance(node, dict) or _is_type_tag(part):
            continue
        else:
            node = None
        parts.append(str(part))
    return ".".join(parts)


def _is_type_tag(part: int | str) -> bool:
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or part in _TYPE_TAGS)


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "tuple", "function-after"}


def parse_workflow(data: Any, file: str = "<memory>") -> Workflow:
    """Validate a workflow mapping: schema first, then the cross-field checks."""
    if not isinstance(data, dict):
        raise WorkflowError(file, "", "a workflow file must hold a YAML mapping")
    try:
        workflow = Workflow.model_validate({**data, "source": file})
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise WorkflowError(file, _field_path(data, first["loc"]), first["msg"] + more) from None
    problems = check_workflow(workflow)
    if problems:
        field, message = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise WorkflowError(file, field, message + more)
    return workflow


def load_workflow(path: str | Path) -> Workflow:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise WorkflowError(str(path), where, f"invalid YAML: {exc}") from None
    return parse_workflow(data, str(path))


def workflow_paths(spec: str | Path | None = None) -> list[Path]:
    """A workflow file, a directory of `*.yaml`, or (None) the bundled workflows."""
    path = Path(spec) if spec is not None else BUNDLED_WORKFLOWS
    if path.is_dir():
        return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"no workflow file or directory at {str(path)!r}")


def load_workflows(
    spec: str | Path | Iterable[str | Path] | None = None,
) -> tuple[list[Workflow], list[Rejection]]:
    """Load every workflow it can; each bad file becomes a rejection naming file and field."""
    if spec is None or isinstance(spec, str | Path):
        paths = workflow_paths(spec)
    else:
        paths = [Path(p) for p in spec]
    workflows: list[Workflow] = []
    rejections: list[Rejection] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            workflow = load_workflow(path)
        except WorkflowError as exc:
            rejections.append(
                Rejection(stage="load", workflow=str(path), field=exc.field, reason=exc.message)
            )
            continue
        except OSError as exc:
            rejections.append(Rejection(stage="load", workflow=str(path), reason=str(exc)))
            continue
        if workflow.id in seen:
            rejections.append(
                Rejection(
                    stage="load",
                    workflow=str(path),
                    field="id",
                    reason=f"duplicate workflow id {workflow.id!r} (also in {seen[workflow.id]})",
                )
            )
            continue
        seen[workflow.id] = str(path)
        workflows.append(workflow)
    return workflows, rejections


# ---------------------------------------------------------------------------------------
# Cross-field checks. Each returns (field path, message) pairs; the first is reported.


def check_workflow(wf: Workflow) -> list[tuple[str, str]]:
    """Every problem of the first failing group, as (field path, message) pairs.

    Groups run in order (tables, request details, steps, identifiers, tools, phrasing)
    because each later group relies on the earlier ones being sound.
    """
    for check in (
        _check_tables,
        _check_request_fields,
        _check_steps,
        _check_identifiers,
        _check_tools,
        _check_phrasing,
    ):
        problems = check(wf)
        if problems:
            return problems
    return []


def _check_generator(
    wf: Workflow, gen: ColumnGen, where: str, table: str | None, earlier: list[str]
) -> list[tuple[str, str]]:
    if not gen.kind:
        return [(where, "set exactly one generator (faker, pattern, choice, int, money, ...)")]
    out: list[tuple[str, str]] = []
    if gen.faker is not None and gen.faker not in FAKER_PROVIDERS:
        out.append((f"{where}.faker", f"unknown or non-deterministic Faker provider {gen.faker!r}"))
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
            from datetime import date

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
            if table is not None and (
                ref_table not in names or names.index(ref_table) >= names.index(table)
            ):
                out.append((f"{where}.ref", f"{ref_table!r} is not an earlier table"))
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


def value_types(wf: Workflow, field: str, _hops: int = 0) -> set[str]:
    """The JSON types a field's values have (what a tool parameter bound to it must accept)."""
    gen = wf.generator(field)
    if gen is None or _hops > len(wf.tables):
        return set()
    if gen.ref is not None:
        return value_types(wf, gen.ref, _hops + 1)
    if gen.int_range is not None:
        return {"integer", "number"}
    if gen.money is not None:
        return {"number"}
    values = (
        gen.choice if gen.choice is not None else [gen.value] if gen.value is not None else None
    )
    if values is None:
        return {"string"}
    types = {
        "string" if isinstance(v, str) else "number" if isinstance(v, float) else "integer"
        for v in values
    }
    if types == {"integer"}:
        types.add("number")
    return types if len(types) == 1 or types == {"integer", "number"} else set()


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
        if not _SLUG.match(name) or name in (REQUEST, HANDOFF_TABLE):
            out.append((where, f"table name {name!r} is reserved or not a slug"))
        lo, hi = table.row_range
        if lo < 0 or lo > hi:
            out.append((f"{where}.rows", "needs 0 <= min <= max"))
        if table.key is not None and table.key not in table.columns:
            out.append((f"{where}.key", f"{table.key!r} is not a column"))
        for group_i, group in enumerate(table.unique):
            bad = [c for c in group if c not in table.columns]
            if bad:
                out.append((f"{where}.unique.{group_i}", f"unknown columns {bad}"))
        earlier: list[str] = []
        for column, gen in table.columns.items():
            cwhere = f"{where}.columns.{column}"
            if not _SLUG.match(column):
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
    out: list[tuple[str, str]] = []
    field = wf.resolve(pre.field, step)
    if not wf.has_field(field):
        return [(f"{where}.field", f"unknown field {field!r}")]
    table, _, column = field.partition(".")
    if table != REQUEST and wf.tables[table].key == column:
        out.append((f"{where}.field", "a precondition cannot constrain a key column"))
    if (pre.value is None) == (pre.value_from is None):
        out.append((where, "set exactly one of value and value_from"))
    if pre.op in ("in", "not_in") and not isinstance(pre.value, list):
        out.append((f"{where}.value", f"op {pre.op!r} needs a list value"))
    if pre.op not in ("in", "not_in") and isinstance(pre.value, list):
        out.append((f"{where}.value", f"op {pre.op!r} needs a scalar value"))
    if pre.value_from is not None:
        source = wf.resolve(pre.value_from, step)
        if not wf.has_field(source):
            out.append((f"{where}.value_from", f"unknown field {source!r}"))
        elif pre.op in ("in", "not_in"):
            out.append((f"{where}.value_from", f"op {pre.op!r} needs a literal list"))
        elif any(
            wf.resolve(p.field, s) == source and p.value_from is not None
            for s, p, _ in wf.all_preconditions()
        ):
            out.append((f"{where}.value_from", f"{source!r} is itself bounded by another field"))
    if table != REQUEST and step.entity is None and "." not in pre.field:
        out.append((f"{where}.field", "a bare column needs the step's entity"))
    if not out:
        from agentwheel.flywheels.agentic.world import can_hold_and_fail

        gen = wf.generator(field)
        if gen is not None and pre.value_from is None and not can_hold_and_fail(wf, field, pre):
            out.append(
                (f"{where}.value", f"the generator of {field!r} cannot both satisfy and violate it")
            )
    return out


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
            if not wf.has_field(field):
                out.append((f"{where}.args.{arg}", f"unknown field {field!r}"))
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
                if pre.id in pre_ids or not _SLUG.match(pre.id):
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
        if ident.name in names or not _SLUG.match(ident.name):
            out.append((f"{where}.name", f"{ident.name!r} is duplicate or not a slug"))
        names.add(ident.name)
        if not wf.has_field(ident.field) or ident.field.startswith(f"{REQUEST}."):
            out.append((f"{where}.field", f"{ident.field!r} is not a table column"))
        elif ident.field not in bound:
            out.append((f"{where}.field", "the user gives it, so some step argument must use it"))
    if wf.transfer.identifier not in names:
        out.append(("transfer.identifier", f"{wf.transfer.identifier!r} is not an identifier"))
    kinds: set[str] = set()
    for i, oos in enumerate(wf.out_of_scope):
        if not _SLUG.match(oos.kind) or oos.kind in kinds:
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
    db = _schema_db((*schema, (HANDOFF_TABLE, ("reference",))))
    located = [(f"steps.{i}.tool", s.tool) for i, s in enumerate(wf.steps)]
    if any(i.name == wf.transfer.identifier for i in wf.identifiers):
        located.append(("transfer", wf.transfer_spec()))
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
    step_tools = len(wf.steps) + 1
    if step_tools > MAX_TASK_TOOLS:
        out.append(("steps", f"{step_tools} tools with the transfer tool; a task has at most 5"))
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
    for field in wf.request_args():
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


def sample_choice(gen: ColumnGen, rng: random.Random) -> Scalar:
    assert gen.choice is not None
    return (
        rng.choices(gen.choice, weights=gen.weights)[0] if gen.weights else rng.choice(gen.choice)
    )
