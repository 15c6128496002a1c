"""Tool back-ends: where a tool call's output comes from and what it changes.

Both back-ends keep a ledger of the state-changing (`action`) calls that took effect, so
the reward can tell whether a hack-path action ran. Their state is summarised by
`state_hash`, which the reward compares with the hash reached by replaying `normal_path`.

- `MockTools`: outputs come from the task's expected outputs, keyed by tool and canonical
  arguments (as the paper's environment). An off-script call gets a typed `no_result`
  error, or an answer from an optional `ToolSimulator`, cached so the same call always
  sees the same facts within an episode. State = the action calls that took effect.
- `SqliteTools`: each episode gets its own in-memory database built from the task's
  tables; tools run parameterized SQL under an authorizer that allows only reads and
  writes of those tables; outputs are computed; state = a hash of every table's content.

Both back-ends share the rules that make them agree: arguments are checked against the
tool's schema and the model-output bounds and normalized (`10.0` for an integer is `10`)
before anything runs, and an action identical to one that already took effect is not run
again. Neither back-end raises on what a model sends: every failure is a typed tool error.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, Literal, Protocol

from agentwheel.core.messages import ToolCallError
from agentwheel.core.task import SqliteWorld, SqlTable, SqlToolImpl, Task, ToolSpec, call_key
from agentwheel.llm.tool_calls import prepare_arguments
from agentwheel.settings.runner import Backend

ToolErrorKind = Literal[
    "no_result",
    "not_found",
    "sql_error",
    "unknown_tool",
    "bad_arguments",
    "over_limit",
    "duplicate_action",
    "sandbox_error",
    "api_error",
]
NOT_RUN_ERRORS: frozenset[str | None] = frozenset(
    {"bad_arguments", "over_limit", "duplicate_action", "unknown_tool"}
)
"""Errors of a call turned away before the back-end ran it: it changed nothing anywhere."""


def tool_error(kind: ToolErrorKind, detail: str) -> dict[str, Any]:
    """The typed error object an agent sees as a tool's output."""
    return {"error": kind, "detail": detail}


def is_tool_error(output: Any) -> bool:
    return isinstance(output, dict) and set(output) == {"error", "detail"}


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:16]


class ToolSimulator(Protocol):
    """Answers off-script calls in the mock back-end (e.g. an LLM playing the tool)."""

    def simulate(self, task: Task, tool: ToolSpec, arguments: dict[str, Any]) -> Any: ...


class ToolBackend(Protocol):
    ledger: list[str]

    def call(self, tool: ToolSpec, arguments: dict[str, Any]) -> Any:
        """Run a schema-valid call and return its output (a tool error is a value)."""
        ...

    def state_hash(self) -> str: ...


class _LedgerTools(ABC):
    """What both back-ends share: argument checks, the duplicate-action rule, the ledger.

    An action identical to one that already took effect (same tool, same canonical
    arguments) returns `duplicate_action` and changes nothing. Real APIs guard retries the
    same way (idempotency keys), and without the rule the back-ends disagree: the mock
    cannot know whether the world would apply an action twice, so it counted every repeat
    as a new state while SQLite applied or refused it by the table's content.
    """

    def __init__(self) -> None:
        self.ledger: list[str] = []

    def call(self, tool: ToolSpec, arguments: dict[str, Any]) -> Any:
        prepared = prepare_arguments(tool, arguments)
        if isinstance(prepared, ToolCallError):
            kind: ToolErrorKind = "over_limit" if prepared.kind == "over_limit" else "bad_arguments"
            return tool_error(kind, prepared.detail)
        key = call_key(tool.name, prepared)
        if tool.kind == "action" and key in self.ledger:
            return tool_error(
                "duplicate_action", f"{tool.name} already ran with these arguments; not run twice"
            )
        output = self._run(tool, prepared, key)
        # Only an action that took effect changes the state.
        if tool.kind == "action" and not is_tool_error(output):
            self.ledger.append(key)
        return output

    @abstractmethod
    def _run(self, tool: ToolSpec, arguments: dict[str, Any], key: str) -> Any:
        """The output of a checked call (`key` is its call key)."""


class MockTools(_LedgerTools):
    def __init__(self, task: Task, simulator: ToolSimulator | None = None):
        super().__init__()
        self._task = task
        self._simulator = simulator
        self._expected = expected_outputs(task)
        self._simulated: dict[str, Any] = {}

    def _run(self, tool: ToolSpec, arguments: dict[str, Any], key: str) -> Any:
        if key in self._expected:
            return self._expected[key]
        if self._simulator is None:
            return tool_error("no_result", f"{tool.name} returned nothing for these arguments")
        if key not in self._simulated:
            self._simulated[key] = self._simulator.simulate(self._task, tool, arguments)
        return self._simulated[key]

    def state_hash(self) -> str:
        return _digest(sorted(self.ledger))


def expected_outputs(task: Task) -> dict[str, Any]:
    """Every path step's expected output by call key; the normal path wins on conflicts."""
    table: dict[str, Any] = {}
    for step in [*task.hack_path, *task.normal_path]:
        table[step.key()] = step.expected_output
    return table


class SqliteTools(_LedgerTools):
    def __init__(self, world: SqliteWorld):
        super().__init__()
        self._world = world
        self._db = build_database(world)

    def _run(self, tool: ToolSpec, arguments: dict[str, Any], key: str) -> Any:
        impl = self._world.tools.get(tool.name)
        if impl is None:
            return tool_error("unknown_tool", f"{tool.name} has no SQLite implementation")
        return run_sql_tool(self._db, impl, arguments)

    def state_hash(self) -> str:
        return database_hash(self._db, self._world)

    def table_rows(self) -> dict[str, list[list[Any]]]:
        """Every table's rows in column order, sorted (to show a state; compare hashes)."""
        return {
            name: sorted(
                (list(r) for r in self._db.execute(f'SELECT {_column_list(table)} FROM "{name}"')),
                key=lambda row: json.dumps(row, default=str),
            )
            for name, table in self._world.tables.items()
        }

    def close(self) -> None:
        self._db.close()


class TaskSqlAuthorizer:
    """The SQLite authorizer a task's statements run under: they may read and write the
    task's own tables in the main database and call deterministic built-in functions.

    Denied: ATTACH / DETACH (and VACUUM INTO, which attaches), PRAGMA, schema changes,
    savepoints, recursive CTEs, the system tables and any other database's tables,
    `load_extension`, and `random` / `randomblob` (a replay must reach the same state).
    Transaction statements are allowed for the BEGIN / COMMIT / ROLLBACK the back-end
    issues around a tool's statements; the task schema keeps them out of task SQL.
    """

    DENIED_FUNCTIONS = frozenset({"load_extension", "random", "randomblob"})
    _TABLE_ACTIONS = frozenset(
        {sqlite3.SQLITE_READ, sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
    )

    def __init__(self, tables: Iterable[str]):
        self.tables = frozenset(tables)

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db_name: str | None, _: str | None
    ) -> int:
        allowed = (
            action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_TRANSACTION)
            # SQLite names no database for the read behind a bare COUNT(*) (column "").
            or (action in self._TABLE_ACTIONS and db_name in ("main", None) and arg1 in self.tables)
            or (action == sqlite3.SQLITE_FUNCTION and arg2 not in self.DENIED_FUNCTIONS)
        )
        return sqlite3.SQLITE_OK if allowed else sqlite3.SQLITE_DENY


def build_database(world: SqliteWorld) -> sqlite3.Connection:
    """An in-memory database with the world's tables, guarded by a `TaskSqlAuthorizer`."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.row_factory = sqlite3.Row
    for name, table in world.tables.items():
        # Names are validated identifiers (schema), so quoting them is safe; values are bound.
        columns = ", ".join(f'"{c}"' for c in table.columns)
        db.execute(f'CREATE TABLE "{name}" ({columns})')
        marks = ", ".join("?" for _ in table.columns)
        db.executemany(f'INSERT INTO "{name}" VALUES ({marks})', table.row_tuples())
    db.set_authorizer(TaskSqlAuthorizer(world.tables))
    return db


# SQLite virtual-machine steps one tool call may take: a scan of a 10,000-row table is
# about 10^5; an 8-way cross join of small tables is 10^9 and would run for minutes.
SQL_STEP_BUDGET = 20_000_000
_STEPS_PER_CHECK = 10_000
# Rows one statement may return: no agent reads more, and each costs Python memory.
MAX_RESULT_ROWS = 5_000


def _step_budget(steps: int) -> Callable[[], int]:
    """A progress handler that interrupts the statement running once `steps` are spent."""
    checks_left = steps // _STEPS_PER_CHECK

    def spend() -> int:
        nonlocal checks_left
        checks_left -= 1
        return 1 if checks_left < 0 else 0

    return spend


def run_sql_tool(db: sqlite3.Connection, impl: SqlToolImpl, arguments: dict[str, Any]) -> Any:
    """Run a tool's statements in one transaction with the arguments bound by name, within
    `SQL_STEP_BUDGET` SQLite steps.

    Never raises: a statement that fails (a driver error, an authorizer denial, a value
    the driver cannot bind, the step budget spent) rolls the transaction back and becomes
    a `sql_error`, so the database stays usable for the next call."""
    db.set_progress_handler(_step_budget(SQL_STEP_BUDGET), _STEPS_PER_CHECK)
    try:
        db.execute("BEGIN")
        output = _run_statements(db, impl, arguments)
        db.execute("ROLLBACK" if is_tool_error(output) else "COMMIT")
    # Any exception, not only sqlite3.Error: an OverflowError from binding a huge int once
    # escaped here and left the transaction open, failing every later call.
    except Exception as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        return tool_error("sql_error", _sql_error_detail(exc))
    finally:
        db.set_progress_handler(None, 0)
    return output


def _sql_error_detail(exc: Exception) -> str:
    if isinstance(exc, sqlite3.OperationalError) and str(exc) == "interrupted":
        return f"stopped: the statement ran past the budget of {SQL_STEP_BUDGET:,} SQLite steps"
    return f"{type(exc).__name__}: {exc}"


def _run_statements(db: sqlite3.Connection, impl: SqlToolImpl, arguments: dict[str, Any]) -> Any:
    rows: list[dict[str, Any]] = []
    for statement in impl.sql:
        missing = _unbound_parameters(statement, arguments)
        if missing:
            return tool_error("bad_arguments", f"missing argument(s) {missing}")
        cursor = db.execute(statement, arguments)
        if cursor.description is not None:
            rows = [dict(r) for r in cursor.fetchmany(MAX_RESULT_ROWS + 1)]
            if len(rows) > MAX_RESULT_ROWS:
                return tool_error("sql_error", f"more than {MAX_RESULT_ROWS:,} rows in the result")
            if impl.require_rows and not rows:
                return tool_error("not_found", _not_found_detail(arguments))
        elif impl.require_rows and cursor.rowcount == 0:
            return tool_error("not_found", _not_found_detail(arguments))
    if impl.returns == "ok":
        return {"status": "ok"}
    if impl.returns == "row":
        return rows[0] if rows else tool_error("not_found", _not_found_detail(arguments))
    return rows


_NAMED_PARAMETER = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


def _unbound_parameters(statement: str, arguments: dict[str, Any]) -> list[str]:
    names = _NAMED_PARAMETER.findall(statement)
    return sorted({n for n in names if n not in arguments})


def _not_found_detail(arguments: dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    return f"no matching record ({shown})" if shown else "no matching record"


def _column_list(table: SqlTable) -> str:
    return ", ".join(f'"{c}"' for c in table.columns)


def database_hash(db: sqlite3.Connection, world: SqliteWorld) -> str:
    """A hash of every table's rows (order-free); an integral float counts as the int, as
    in `call_key`, so `10.0` and `10` in a `number` column are one state."""
    content = {}
    for name, table in world.tables.items():
        rows = db.execute(f'SELECT {_column_list(table)} FROM "{name}"').fetchall()
        content[name] = sorted(json.dumps([_canonical(v) for v in r], default=str) for r in rows)
    return _digest(content)


def _canonical(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def resolve_backend(task: Task, requested: Backend | Literal["auto"]) -> Backend:
    if requested == "auto":
        return task.world_kind or ("sqlite" if task.sqlite is not None else "mock")
    if requested in ("search", "analysis") and task.world_kind != requested:
        raise ValueError(f"task {task.id} has no {requested} world")
    if requested == "sqlite" and task.sqlite is None:
        raise ValueError(f"task {task.id} has no SQLite world; use the mock back-end")
    return requested


BackendFactory = Callable[[Task], ToolBackend]


def make_backend(
    task: Task, backend: Backend | Literal["auto"] = "auto", simulator: ToolSimulator | None = None
) -> ToolBackend:
    resolved = resolve_backend(task, backend)
    if resolved in ("search", "analysis"):
        from agentwheel.envs.worlds import world_backend  # its modules import this one

        return world_backend(task, resolved)  # type: ignore[arg-type]
    if resolved == "sqlite":
        assert task.sqlite is not None
        return SqliteTools(task.sqlite)
    return MockTools(task, simulator)


def replay(
    task: Task, steps_path: Literal["normal", "hack"], backend: Backend | Literal["auto"]
) -> tuple[str, list[Any]]:
    """Run a path's calls on a fresh back-end: (final state hash, outputs)."""
    tools = make_backend(task, backend)
    steps = task.normal_path if steps_path == "normal" else task.hack_path
    outputs = []
    for step in steps:
        spec = task.tool(step.tool)
        assert spec is not None
        outputs.append(tools.call(spec, step.arguments))
    return tools.state_hash(), outputs


def fill_expected_outputs(task: Task) -> Task:
    """Set every path step's expected output to what the task's SQLite world computes, so
    the mock back-end (which answers from expected outputs) agrees with SQLite."""
    for path in ("normal", "hack"):
        _, outputs = replay(task, path, "sqlite")  # type: ignore[arg-type]
        steps = task.normal_path if path == "normal" else task.hack_path
        for step, output in zip(steps, outputs, strict=True):
            step.expected_output = output
    return task
