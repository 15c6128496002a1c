"""Tool back-ends: where a tool call's output comes from and what it changes.

Both back-ends keep a ledger of the state-changing (`action`) calls that took effect, so
the reward can tell whether a hack-path action ran. Their state is summarised by
`state_hash`, which the reward compares with the hash reached by replaying `normal_path`.

- `MockTools`: outputs come from the task's expected outputs, keyed by tool and canonical
  arguments (as the paper's environment). An off-script call gets a typed `no_result`
  error, or an answer from an optional `ToolSimulator`, cached so the same call always
  sees the same facts within an episode. State = the multiset of action calls that took effect.
- `SqliteTools`: each episode gets its own in-memory database built from the task's
  tables; tools run parameterized SQL; outputs are computed; state = a hash of every
  table's content.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Callable
from typing import Any, Literal, Protocol

from agentwheel.core.task import SqliteWorld, SqlToolImpl, Task, ToolSpec, call_key

ToolErrorKind = Literal["no_result", "not_found", "sql_error", "unknown_tool", "bad_arguments"]
Backend = Literal["mock", "sqlite"]


def tool_error(kind: ToolErrorKind, detail: str) -> dict[str, Any]:
    """The typed error object an agent sees as a tool's output."""
    return {"error": kind, "detail": detail}


def is_tool_error(output: Any) -> bool:
    return isinstance(output, dict) and set(output) == {"error", "detail"}


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ToolSimulator(Protocol):
    """Answers off-script calls in the mock back-end (e.g. an LLM playing the tool)."""

    def simulate(self, task: Task, tool: ToolSpec, arguments: dict[str, Any]) -> Any: ...


class ToolBackend(Protocol):
    ledger: list[str]

    def call(self, tool: ToolSpec, arguments: dict[str, Any]) -> Any:
        """Run a schema-valid call and return its output (a tool error is a value)."""
        ...

    def state_hash(self) -> str: ...


class MockTools:
    def __init__(self, task: Task, simulator: ToolSimulator | None = None):
        self._task = task
        self._simulator = simulator
        self._expected = expected_outputs(task)
        self._simulated: dict[str, Any] = {}
        self.ledger: list[str] = []

    def call(self, tool: ToolSpec, arguments: dict[str, Any]) -> Any:
        key = call_key(tool.name, arguments)
        output = self._answer(key, tool, arguments)
        # As in the SQLite back-end, only an action that took effect changes the state.
        if tool.kind == "action" and not is_tool_error(output):
            self.ledger.append(key)
        return output

    def _answer(self, key: str, tool: ToolSpec, arguments: dict[str, Any]) -> Any:
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


class SqliteTools:
    def __init__(self, world: SqliteWorld):
        self._world = world
        self._db = build_database(world)
        self.ledger: list[str] = []

    def call(self, tool: ToolSpec, arguments: dict[str, Any]) -> Any:
        impl = self._world.tools.get(tool.name)
        if impl is None:
            return tool_error("unknown_tool", f"{tool.name} has no SQLite implementation")
        output = run_sql_tool(self._db, impl, arguments)
        if tool.kind == "action" and not is_tool_error(output):
            self.ledger.append(call_key(tool.name, arguments))
        return output

    def state_hash(self) -> str:
        return database_hash(self._db, self._world)

    def close(self) -> None:
        self._db.close()


def build_database(world: SqliteWorld) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.row_factory = sqlite3.Row
    for name, table in world.tables.items():
        # Names are validated identifiers (schema), so quoting them is safe; values are bound.
        columns = ", ".join(f'"{c}"' for c in table.columns)
        db.execute(f'CREATE TABLE "{name}" ({columns})')
        marks = ", ".join("?" for _ in table.columns)
        db.executemany(f'INSERT INTO "{name}" VALUES ({marks})', table.row_tuples())
    return db


def run_sql_tool(db: sqlite3.Connection, impl: SqlToolImpl, arguments: dict[str, Any]) -> Any:
    """Run a tool's statements in one transaction with the arguments bound by name."""
    rows: list[dict[str, Any]] = []
    db.execute("BEGIN")
    try:
        for statement in impl.sql:
            missing = _unbound_parameters(statement, arguments)
            if missing:
                db.execute("ROLLBACK")
                return tool_error("bad_arguments", f"missing argument(s) {missing}")
            cursor = db.execute(statement, arguments)
            if cursor.description is not None:
                rows = [dict(r) for r in cursor.fetchall()]
                if impl.require_rows and not rows:
                    db.execute("ROLLBACK")
                    return tool_error("not_found", _not_found_detail(arguments))
            elif impl.require_rows and cursor.rowcount == 0:
                db.execute("ROLLBACK")
                return tool_error("not_found", _not_found_detail(arguments))
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        db.execute("ROLLBACK")
        return tool_error("sql_error", str(exc))
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


def database_hash(db: sqlite3.Connection, world: SqliteWorld) -> str:
    content = {}
    for name, table in world.tables.items():
        cols = ", ".join(f'"{c}"' for c in table.columns)
        rows = db.execute(f'SELECT {cols} FROM "{name}"').fetchall()
        content[name] = sorted(json.dumps(list(r), default=str) for r in rows)
    return _digest(content)


def resolve_backend(task: Task, requested: Backend | Literal["auto"]) -> Backend:
    if requested == "auto":
        return "sqlite" if task.sqlite is not None else "mock"
    if requested == "sqlite" and task.sqlite is None:
        raise ValueError(f"task {task.id} has no SQLite world; use the mock back-end")
    return requested


BackendFactory = Callable[[Task], ToolBackend]


def make_backend(
    task: Task, backend: Backend | Literal["auto"] = "auto", simulator: ToolSimulator | None = None
) -> ToolBackend:
    if resolve_backend(task, backend) == "sqlite":
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
