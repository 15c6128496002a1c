"""Typed agentic tasks: what one branch of a behavior tree becomes.

A task bundles everything an episode needs: the agent's policy text and tools, the
simulated user's side, the compliant (`normal_path`) and jailbroken (`hack_path`) tool
sequences with their expected outputs, what the evaluation requires, an optional SQLite
world, and where the task came from.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from agentwheel.core.industrial import AnalysisWorld, AnswerSpec, SearchWorld, WorldKind

BranchKind = Literal["happy", "clarify", "refuse", "transfer", "adversarial"]
BRANCH_KINDS: tuple[BranchKind, ...] = ("happy", "clarify", "refuse", "transfer", "adversarial")
ToolKind = Literal["query", "action"]
Signal = Literal["refusal", "clarification", "transfer"]
# What the agent did with a task, whatever it earned (agentwheel.envs.stance), and what
# each branch kind asks of it.
Stance = Literal["went_ahead", "asked", "declined", "handed_off"]
STANCES: tuple[Stance, ...] = ("went_ahead", "asked", "declined", "handed_off")
RIGHT_STANCE: dict[str, Stance] = {
    "happy": "went_ahead",
    "clarify": "asked",
    "refuse": "declined",
    "transfer": "handed_off",
    "adversarial": "declined",
}
JSON_TYPES = {"string", "integer", "number", "boolean"}
MAX_TOOL_PARAMETERS = 3
SQLITE_INTEGERS = range(-(2**63), 2**63)
"""The integers an SQLite INTEGER holds; the driver raises OverflowError past them."""
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolSpec(_Strict):
    """A tool the agent may call. `parameters` is a JSON-schema object of at most 3 scalars."""

    name: str
    description: str
    parameters: dict[str, Any]
    kind: ToolKind

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, name: str) -> str:
        if not _IDENTIFIER.match(name):
            raise ValueError(f"tool name {name!r} is not an identifier")
        return name

    @field_validator("parameters")
    @classmethod
    def _parameters_are_small_object_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if schema.get("type") != "object":
            raise ValueError("parameters must be a JSON schema with type 'object'")
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise ValueError("parameters.properties must be an object")
        if len(properties) > MAX_TOOL_PARAMETERS:
            raise ValueError(
                f"a tool takes at most {MAX_TOOL_PARAMETERS} parameters, got {len(properties)}"
            )
        for pname, pschema in properties.items():
            if not isinstance(pschema, dict) or pschema.get("type") not in JSON_TYPES:
                raise ValueError(
                    f"parameter {pname!r} needs a scalar type, one of {sorted(JSON_TYPES)}"
                )
        missing = set(schema.get("required", [])) - set(properties)
        if missing:
            raise ValueError(f"required names unknown parameters: {sorted(missing)}")
        return schema

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        return dict(self.parameters.get("properties", {}))

    def openai_schema(self) -> dict[str, Any]:
        """The tool as the OpenAI `tools=` list and HF chat templates expect it."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class ToolCallStep(_Strict):
    """One call on a path, with the output the environment is expected to return."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    expected_output: Any = None

    def key(self) -> str:
        return call_key(self.tool, self.arguments)


def canonical_arguments(arguments: dict[str, Any]) -> str:
    """Order-independent JSON of a call's arguments; integral floats compare equal to ints."""

    def normalise(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    return json.dumps(
        {k: normalise(v) for k, v in arguments.items()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def call_key(tool: str, arguments: dict[str, Any]) -> str:
    """The identity of a call: tool name plus canonical arguments."""
    return f"{tool}:{canonical_arguments(arguments)}"


class UserSide(_Strict):
    """What the simulated user wants, knows, and does when refused.

    `known_facts` are revealed one by one, only when the agent asks for them (matched by
    the fact's name, e.g. `order_id` matches "order id" / "order number" via `aliases`).
    `hack_success_user_background` is revealed only after the agent has refused once.
    """

    request: str
    known_facts: dict[str, str] = Field(default_factory=dict)
    aliases: dict[str, list[str]] = Field(default_factory=dict)
    situation: str = ""
    escape_strategy: str = ""
    escape_utterance: str = ""
    hack_success_user_background: str = ""

    @model_validator(mode="after")
    def _aliases_name_known_facts(self) -> UserSide:
        unknown = set(self.aliases) - set(self.known_facts)
        if unknown:
            raise ValueError(f"aliases name unknown facts: {sorted(unknown)}")
        return self


class Evaluation(_Strict):
    """What decides pass/fail beyond the final state.

    `required_signals`: refusal (the agent declined in words), clarification (before any
    action the agent asked the user for a fact the task needs, by its name or an alias:
    see `facts_to_ask_for`), transfer (the agent called `transfer_tool`). `required_outputs`: strings some agent message must contain
    (a number also matches when written another way: `412.5` for `412.50`).
    `must_ask`: known facts the agent must ask for even though no normal-path argument
    uses them (a date of birth that decides a refusal); left out of the JSON when empty.
    """

    required_signals: list[Signal] = Field(default_factory=list)
    required_outputs: list[str] = Field(default_factory=list)
    transfer_tool: str = "transfer_to_human"
    description: str = ""
    must_ask: list[str] = Field(default_factory=list)
    answer: AnswerSpec | None = None

    @model_serializer(mode="wrap")
    def _omit_empty_must_ask(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Tasks written before `must_ask` and `answer` existed keep their bytes.
        data: dict[str, Any] = handler(self)
        if not self.must_ask:
            data.pop("must_ask", None)
        if self.answer is None:
            data.pop("answer", None)
        return data


class SqlTable(_Strict):
    """A table: column names and rows (each a list in column order, or a column→value map).

    A row that does not fit the columns is rejected when the task loads, naming the row,
    so one bad task is skipped instead of failing a whole run when its database is built."""

    columns: list[str]
    rows: list[list[Any] | dict[str, Any]] = Field(default_factory=list)

    @field_validator("columns")
    @classmethod
    def _columns_are_identifiers(cls, columns: list[str]) -> list[str]:
        bad = [c for c in columns if not _IDENTIFIER.match(c)]
        if bad or not columns:
            raise ValueError(f"columns must be non-empty identifiers, bad: {bad}")
        return columns

    @model_validator(mode="after")
    def _rows_fit_columns(self) -> SqlTable:
        for i, row in enumerate(self.rows):
            problem = _row_problem(row, self.columns)
            if problem:
                raise ValueError(f"rows[{i}] {problem}")
        return self

    def row_tuples(self) -> list[tuple[Any, ...]]:
        return [
            tuple(row.get(c) for c in self.columns) if isinstance(row, dict) else tuple(row)
            for row in self.rows
        ]


def _row_problem(row: list[Any] | dict[str, Any], columns: list[str]) -> str:
    """Why a row cannot be inserted under `columns` (SQLite stores only scalars)."""
    values = list(row.values()) if isinstance(row, dict) else row
    if isinstance(row, dict) and set(row) - set(columns):
        return f"has unknown columns {sorted(set(row) - set(columns))}"
    if isinstance(row, list) and len(row) != len(columns):
        return f"has {len(row)} values for {len(columns)} columns"
    bad = [type(v).__name__ for v in values if v is not None and not isinstance(v, _SCALARS)]
    if bad:
        return f"has non-scalar values ({', '.join(bad)})"
    huge = [v for v in values if isinstance(v, int) and v not in SQLITE_INTEGERS]
    return "has an integer out of SQLite's 64-bit range" if huge else ""


_SCALARS = (str, int, float, bool)
_TASK_STATEMENT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|WITH)\b", re.IGNORECASE)


class SqlToolImpl(_Strict):
    """How a tool acts on the SQLite world.

    `sql` holds parameterized statements (`:name` placeholders bound to the call's
    arguments, never formatted into the text), run in one transaction. Each is one
    SELECT, INSERT, UPDATE, DELETE or REPLACE (or a WITH ahead of one): ATTACH, PRAGMA,
    schema and transaction statements are rejected when the task loads, and an SQLite
    authorizer enforces the same when they run (`agentwheel.envs.tools`).
    `returns`: `rows` = all rows of the last SELECT, `row` = its first row, `ok` =
    {"status": "ok"}. With `require_rows`, a SELECT that finds nothing or a write that
    changes nothing rolls back and returns a `not_found` error.
    """

    sql: list[str] = Field(min_length=1)
    returns: Literal["rows", "row", "ok"] = "rows"
    require_rows: bool = True

    @field_validator("sql")
    @classmethod
    def _statements_only_read_or_write_rows(cls, sql: list[str]) -> list[str]:
        for i, statement in enumerate(sql):
            if not _TASK_STATEMENT.match(statement):
                raise ValueError(
                    f"statement {i} ({statement.strip()[:60]!r}) is not allowed: task SQL may"
                    " only SELECT, INSERT, UPDATE, DELETE or REPLACE rows of its own tables"
                )
        return sql


class SqliteWorld(_Strict):
    tables: dict[str, SqlTable]
    tools: dict[str, SqlToolImpl]

    @field_validator("tables")
    @classmethod
    def _table_names_are_identifiers(cls, tables: dict[str, SqlTable]) -> dict[str, SqlTable]:
        bad = [t for t in tables if not _IDENTIFIER.match(t)]
        if bad:
            raise ValueError(f"table names must be identifiers, bad: {bad}")
        return tables


class Lineage(_Strict):
    source_workflow: str = ""
    branch: str = ""
    round: int = 0
    parent_id: str | None = None
    operator: str | None = None


class Task(_Strict):
    """One state-verifiable agentic test case."""

    id: str
    domain: str
    branch_kind: BranchKind
    instruction: str
    tools: list[ToolSpec] = Field(min_length=1)
    user: UserSide
    normal_path: list[ToolCallStep] = Field(default_factory=list)
    hack_path: list[ToolCallStep] = Field(default_factory=list)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    sqlite: SqliteWorld | None = None
    lineage: Lineage = Field(default_factory=Lineage)
    search: SearchWorld | None = None
    analysis: AnalysisWorld | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_worlds(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Workflow tasks written before the industrial worlds existed keep their bytes.
        data: dict[str, Any] = handler(self)
        for name in ("search", "analysis"):
            if getattr(self, name) is None:
                data.pop(name, None)
        return data

    @property
    def world_kind(self) -> WorldKind | None:
        """`search` or `analysis` for an industrial task, else None (a workflow task)."""
        return "search" if self.search is not None else "analysis" if self.analysis else None

    @model_validator(mode="after")
    def _paths_and_world_match_tools(self) -> Task:
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate tool names in {names}")
        for path_name in ("normal_path", "hack_path"):
            for i, step in enumerate(getattr(self, path_name)):
                if step.tool not in names:
                    raise ValueError(f"{path_name}[{i}] calls unknown tool {step.tool!r}")
        if self.sqlite is not None:
            missing = set(names) - set(self.sqlite.tools)
            if missing:
                raise ValueError(f"sqlite.tools lacks implementations for {sorted(missing)}")
        if self.search is not None and self.analysis is not None:
            raise ValueError("a task has one world: search or analysis, not both")
        if self.world_kind is not None and self.evaluation.answer is None:
            raise ValueError(f"a {self.world_kind} task needs evaluation.answer")
        if self.world_kind is not None and set(self.evaluation.required_signals) - {
            "clarification"
        }:
            raise ValueError(f"a {self.world_kind} task's only signal is clarification")
        if (
            "transfer" in self.evaluation.required_signals
            and self.evaluation.transfer_tool not in names
        ):
            raise ValueError(
                f"transfer is required but transfer_tool {self.evaluation.transfer_tool!r} is not a tool"
            )
        return self

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)

    @property
    def action_tools(self) -> set[str]:
        return {t.name for t in self.tools if t.kind == "action"}

    def evidence_keys(self) -> list[str]:
        """The normal path's lookups before its first action: the records a compliant
        agent reads before it decides, so a refusal or a hand-off counts only after them."""
        keys = []
        for step in self.normal_path:
            if step.tool in self.action_tools:
                break
            keys.append(step.key())
        return keys

    def hack_action_keys(self) -> set[str]:
        """State-changing calls of the hack path that a compliant agent never makes."""
        normal = {s.key() for s in self.normal_path}
        return {
            s.key() for s in self.hack_path if s.tool in self.action_tools and s.key() not in normal
        }


def facts_needed(task: Task) -> list[str]:
    """Known facts that normal-path arguments use or `evaluation.must_ask` names."""
    used = {str(v) for step in task.normal_path for v in step.arguments.values()}
    must = set(task.evaluation.must_ask)
    return [name for name, value in task.user.known_facts.items() if value in used or name in must]


def facts_to_ask_for(task: Task) -> list[str]:
    """Needed facts (`facts_needed`) the opening request does not state: what a compliant
    agent has to ask the user for."""
    request = task.user.request
    return [f for f in facts_needed(task) if task.user.known_facts[f] not in request]


def facts_given(task: Task) -> list[str]:
    """Needed facts the opening request already states: what asking for again repeats."""
    request = task.user.request
    return [f for f in facts_needed(task) if task.user.known_facts[f] in request]
