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
  optionally how a user describes a record whose id they lack (`records`);
- optionally: facts beyond identifiers the user must give (`facts`, asked for when
  missing), what the agent must tell the user after an action (`Step.tell`), rules that
  send the user to a human when they fail (`on_fail: transfer`), rules over related rows
  (`related`: none, at most n, another person's, within a date window), rules with
  alternatives (`any_of`), hand-off desks (`desks`), values the user insists on
  (`insist`), columns that follow another (`map`), a referenced row (`follows`) or the
  rows that reference them (`sets`), uniqueness among some rows (`unique` with `when`),
  and further intents (`intents`) that share the tables and the policy.

Fields are named `table.column` or `request.<name>`; inside a step's preconditions a bare
column name refers to the step's `entity` table.

This module is the schema and the questions it answers about itself; `workflow_checks`
holds the cross-field checks and `workflow_loader` reads files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentwheel.core.task import SqlToolImpl, ToolKind, ToolSpec
from agentwheel.flywheels.agentic.workflow_rules import (
    Condition,
    Desk,
    Op,
    RelatedRows,
    Scalar,
    SetsReferenced,
    UniqueWhen,
    compare,
)

ParamType = Literal["string", "integer", "number"]
ValueFormat = Literal["text", "money", "int", "date"]

REQUEST = "request"
HANDOFF_TABLE = "handoffs"
MIN_TASK_TOOLS, MAX_TASK_TOOLS = 3, 5

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
SLUG = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PLACEHOLDER = re.compile(rf"\{{({IDENT}\.{IDENT})\}}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MapGen(_Strict):
    """A column that follows another column of its row: `values[str(row[column])]`."""

    column: str
    values: dict[str, Scalar] = Field(min_length=1)


class ColumnGen(_Strict):
    """How to generate one column (or request detail). Exactly one generator key is set.

    - `faker`: a seed-deterministic Faker provider (`name`, `email`, `city`, ...);
    - `pattern`: `#` = digit, `?` = upper-case letter (`W#######`, `??-####`);
    - `choice` (+ optional `weights`): one of the listed values;
    - `int` / `money`: uniform in `[lo, hi]` (money has two decimals);
    - `date`: an ISO date uniform in `[start, end]` (fixed bounds, never "today");
    - `ref`: the key of a row of an earlier table (`customers.customer_id`);
    - `email_of` / `username_of`: derived from an earlier name column of the same row;
    - `map`: follows an earlier choice column of the same row (a vehicle's class follows
      its model): `{column: model, values: {Ford Transit: commercial, ...}}`;
    - `follows`: the value of a column of the row an earlier ref column of this row points
      at (`follows: plan_id.account_id`: a bill's account is its plan's account);
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
    map: MapGen | None = None
    follows: str | None = None
    value: Scalar | None = None
    format: ValueFormat = "text"
    say: dict[str, str | list[str]] = Field(default_factory=dict)

    @property
    def kind(self) -> str:
        keys = (
            *("faker", "pattern", "choice", "int_range", "money", "date", "ref"),
            *("email_of", "username_of", "map", "follows", "value"),
        )
        set_keys = [k for k in keys if getattr(self, k) is not None]
        return set_keys[0] if len(set_keys) == 1 else ""

    @property
    def numeric(self) -> bool:
        if self.int_range is not None or self.money is not None:
            return True
        if self.choice:
            return all(isinstance(c, int | float) for c in self.choice)
        if self.map is not None:
            return all(isinstance(v, int | float) for v in self.map.values.values())
        return isinstance(self.value, int | float)

    def listed_values(self) -> list[Scalar] | None:
        """The values a choice, map or constant generator can produce (None: open-ended)."""
        if self.choice is not None:
            return list(self.choice)
        if self.map is not None:
            return list(dict.fromkeys(self.map.values.values()))
        return [self.value] if self.value is not None else None


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


FailOutcome = Literal["refuse", "transfer"]


class Precondition(_Strict):
    """A condition a step relies on: `field op value` (or `field op <value of value_from>`),
    or, with `related`, a condition on other rows (then field, op and value are not set).

    `rule` is the policy sentence the agent reads (a condition, not a procedure);
    `false_claims` are things a pushing user may falsely assert after a refusal;
    `cue` is an optional hint for the user's situation when the condition fails;
    `on_fail: transfer` sends the user to a human instead of refusing (the rule's text
    should say so); `insist` holds what a user says to insist on their own violating
    value ("It has to be exactly {request.nights} nights."), an adversarial push.
    """

    id: str
    field: str = ""
    op: Op = "eq"
    value: Scalar | list[Scalar] | None = None
    value_from: str | None = None
    related: RelatedRows | None = None
    any_of: list[Condition] = Field(default_factory=list)
    rule: str
    false_claims: list[str] = Field(default_factory=list)
    cue: str = ""
    on_fail: FailOutcome = "refuse"
    desk: str | None = None
    insist: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _column_or_related(self) -> Precondition:
        if self.any_of and self.related is not None:
            raise ValueError("a rule is `related` or `any_of`, not both")
        if (
            self.related is None
            and not self.any_of
            and not {"field", "op"} <= self.model_fields_set
        ):
            missing = sorted({"field", "op"} - self.model_fields_set)
            raise ValueError(
                f"needs {' and '.join(missing)} (or `related` for a rule on other rows)"
            )
        # `op: eq` and an empty field are what a related rule serialises with.
        column_keys = [
            k
            for k, unset in (
                ("field", not self.field),
                ("op", self.op == "eq"),
                ("value", self.value is None),
                ("value_from", self.value_from is None),
            )
            if not unset
        ]
        if self.related is not None and column_keys:
            raise ValueError(
                f"a `related` rule has no {', '.join(column_keys)}: it holds when no "
                "other row matches (with `exist: true`, when one does)"
            )
        if self.any_of and column_keys:
            raise ValueError(
                f"an `any_of` rule has no {', '.join(column_keys)}: each alternative under "
                "any_of has its own field, op and value"
            )
        if len(self.any_of) == 1:
            raise ValueError("any_of needs two or more alternatives (one is a plain rule)")
        return self

    def alternatives(self) -> list[Precondition]:
        """The column conditions of the rule: its `any_of` alternatives, each as a rule of
        its own (same id and text), or the rule itself; none for a `related` rule."""
        if self.related is not None:
            return []
        if not self.any_of:
            return [self]
        return [
            Precondition.model_validate(
                {"id": self.id, "rule": self.rule, **c.model_dump(exclude_none=True)}
            )
            for c in self.any_of
        ]

    def threshold(self, context: dict[str, Any]) -> Any:
        return context[self.value_from] if self.value_from is not None else self.value

    def holds(self, actual: Any, threshold: Any) -> bool:
        return compare(actual, self.op, threshold)


class TableSpec(_Strict):
    """A table of the world: row count range, key column, and one generator per column.

    A column's generator may be null only in a table that starts empty (`rows: 0`), e.g.
    a log the action tools write to. `unique` lists column groups no two rows share;
    `sets` keeps a column of referenced rows in step with this table's rows.
    """

    rows: tuple[int, int] | int = (4, 8)
    key: str | None = None
    columns: dict[str, ColumnGen | None] = Field(min_length=1)
    unique: list[list[str] | UniqueWhen] = Field(default_factory=list)
    sets: list[SetsReferenced] = Field(default_factory=list)

    @property
    def row_range(self) -> tuple[int, int]:
        return (self.rows, self.rows) if isinstance(self.rows, int) else self.rows


class Tell(_Strict):
    """What the agent must tell the user once an action step ran: a column of the
    action's output (its final SELECT, i.e. the changed record), e.g. the new return date."""

    column: str
    spoken: str


class Step(_Strict):
    """One happy-path step: its tool, where each argument comes from, what it relies on."""

    id: str
    tool: ToolDef
    entity: str | None = None
    args: dict[str, str] = Field(default_factory=dict)
    preconditions: list[Precondition] = Field(default_factory=list)
    optional_preconditions: list[Precondition] = Field(default_factory=list)
    tell: list[Tell] = Field(default_factory=list)


class Identifier(_Strict):
    """Something the user knows and must give (`order_id` ↔ "order number").

    In `facts`, `field` may also be a request detail (`request.pickup_location`): a fact
    the agent needs besides the identifiers, asked for when the user leaves it out."""

    name: str
    field: str
    spoken: str
    aliases: list[str] = Field(default_factory=list)


class OutOfScope(_Strict):
    """A request kind this workflow's agent may not handle: it transfers to a human."""

    kind: str
    rule: str
    requests: list[str] = Field(min_length=2)
    desk: str | None = None


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


class Intent(_Strict):
    """A further request kind of a workflow (add a driver, beside extending a rental): its
    own happy path and phrasing, sharing the workflow's tables, identifiers, facts,
    out-of-scope kinds and transfer. Precondition ids are unique across intents unless
    the precondition is the same (a step shared through a YAML anchor)."""

    id: str
    phrasing: Phrasing
    steps: list[Step] = Field(min_length=2)


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
    facts: list[Identifier] = Field(default_factory=list)
    out_of_scope: list[OutOfScope] = Field(min_length=1)
    transfer: Transfer
    desks: list[Desk] = Field(default_factory=list)
    extra_tools: list[ToolDef] = Field(default_factory=list)
    phrasing: Phrasing
    intents: list[Intent] = Field(default_factory=list)
    # when_room: an intent's tools count only in its own tasks (see task_tools).
    other_intent_tools: Literal["always", "when_room"] = "always"
    source: str = ""

    @field_validator("id", "domain")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
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

    def transfer_spec(self, desk: str | None = None) -> ToolDef:
        """The hand-off tool, or (`desk`) that desk's; with desks, a hand-off records which
        desk took it, so handing to the wrong one changes the state."""
        ident = self.identifier(self.transfer.identifier)
        chosen = next((d for d in self.desks if d.name == desk), None) if desk else None
        name = chosen.tool if chosen is not None else self.transfer.tool
        description = chosen.description if chosen is not None else self.transfer.description
        sql = f"INSERT INTO {HANDOFF_TABLE} (reference) VALUES (:{ident.name})"
        if self.desks:
            sql = (
                f"INSERT INTO {HANDOFF_TABLE} (reference, desk) "
                f"VALUES (:{ident.name}, '{desk or 'human'}')"
            )
        return ToolDef(
            name=name,
            description=description,
            kind="action",
            params={ident.name: ParamDef(type="string", description=f"The {ident.spoken}.")},
            sql=[sql],
            returns="ok",
        )

    def handoff_tools(self) -> list[ToolDef]:
        """The transfer tool, then each desk's."""
        return [self.transfer_spec(), *(self.transfer_spec(d.name) for d in self.desks)]

    def handoff_columns(self) -> list[str]:
        return ["reference", "desk"] if self.desks else ["reference"]

    def all_tools(self) -> list[ToolDef]:
        return [*(s.tool for s in self.steps), *self.handoff_tools(), *self.extra_tools]

    def request_args(self) -> list[str]:
        """Request details (`request.x`) that some step passes to its tool."""
        fields = [self.resolve(src, s) for s in self.steps for src in s.args.values()]
        return list(dict.fromkeys(f for f in fields if f.startswith(f"{REQUEST}.")))

    def phrased_request_args(self) -> list[str]:
        """Request arguments the phrasing must say: those that are not `facts` (a fact is
        stated like an identifier, or asked for)."""
        facts = {f.field for f in self.facts}
        return [f for f in self.request_args() if f not in facts]

    def needed_facts(self) -> list[Identifier]:
        """The facts this workflow's steps use (as an argument or a rule's field)."""
        used = {self.resolve(src, s) for s in self.steps for src in s.args.values()}
        used |= {
            self.resolve(a.field, s)
            for s, p, _ in self.all_preconditions()
            for a in p.alternatives()
            if a.field
        }
        return [f for f in self.facts if f.field in used]

    def fact(self, name: str) -> Identifier:
        return next(i for i in [*self.identifiers, *self.facts] if i.name == name)

    def for_intent(self, intent: str | None) -> Workflow:
        """The workflow as one intent sees it: that intent's steps and phrasing (None or
        the empty string: the workflow's own)."""
        if not intent:
            return self
        chosen = next(i for i in self.intents if i.id == intent)
        return self.model_copy(update={"steps": chosen.steps, "phrasing": chosen.phrasing})

    def views(self) -> list[tuple[str, Workflow]]:
        """("", the workflow itself) and (intent id, its view) for each further intent."""
        return [("", self), *((i.id, self.for_intent(i.id)) for i in self.intents)]

    def all_preconditions(self) -> Iterator[tuple[Step, Precondition, bool]]:
        """(step, precondition, optional?) in happy-path order."""
        for step in self.steps:
            for pre in step.preconditions:
                yield step, pre, False
            for pre in step.optional_preconditions:
                yield step, pre, True
