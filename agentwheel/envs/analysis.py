"""The data-analysis world: `list_tables`, `describe_table(table)`, `run_sql(query)` (one
read-only statement on DuckDB, with a time limit), `run_python(code)` (in the sandbox,
the tables as CSV files under /data), and `submit_answer`.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import duckdb

from agentwheel.core.industrial import AnalysisWorld
from agentwheel.core.task import ToolSpec
from agentwheel.envs.sandbox import SandboxLimits, run_python
from agentwheel.envs.tables import TableSet, load_tables, plain
from agentwheel.envs.tools import tool_error
from agentwheel.envs.worlds import SUBMIT_ANSWER, AnswerTools

MAX_ROWS = 50
SAMPLE_ROWS = 3
SQL_SECONDS = 5.0

LIST_TABLES = ToolSpec(
    name="list_tables",
    description="List the tables with their row counts.",
    parameters={"type": "object", "properties": {}},
    kind="query",
)
DESCRIBE_TABLE = ToolSpec(
    name="describe_table",
    description="A table's columns with their types, and a few sample rows.",
    parameters={
        "type": "object",
        "properties": {"table": {"type": "string", "description": "A table name."}},
        "required": ["table"],
    },
    kind="query",
)
RUN_SQL = ToolSpec(
    name="run_sql",
    description=(
        f"Run one read-only SQL query (DuckDB dialect) on the tables. Returns the columns and"
        f" up to {MAX_ROWS} rows."
    ),
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string", "description": "One SELECT statement."}},
        "required": ["query"],
    },
    kind="query",
)
RUN_PYTHON = ToolSpec(
    name="run_python",
    description=(
        "Run Python code (standard library only) in a sandbox without network. The tables are"
        " CSV files under /data (e.g. /data/orders.csv). Print what you want to see."
    ),
    parameters={
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python source code."}},
        "required": ["code"],
    },
    kind="query",
)
ANALYSIS_TOOLS = [LIST_TABLES, DESCRIBE_TABLE, RUN_SQL, RUN_PYTHON, SUBMIT_ANSWER]


def query_rows(cursor: duckdb.DuckDBPyConnection, sql: str, seconds: float = SQL_SECONDS) -> Any:
    """Run one statement with a time limit: {columns, rows, truncated}, or a
    `sql_error` tool error."""
    try:
        statements = cursor.extract_statements(sql)
    except duckdb.Error as exc:
        return tool_error("sql_error", str(exc).splitlines()[0])
    if len(statements) != 1:
        return tool_error("sql_error", f"one statement per call, got {len(statements)}")
    timer = threading.Timer(seconds, cursor.interrupt)
    timer.start()
    try:
        result = cursor.execute(sql)
        columns = [d[0] for d in result.description or []]
        rows = result.fetchmany(MAX_ROWS + 1)
    except duckdb.InterruptException:
        return tool_error("sql_error", f"the query ran past {seconds:g} s and was stopped")
    except duckdb.Error as exc:
        return tool_error("sql_error", " ".join(str(exc).split())[:400])
    finally:
        timer.cancel()
    return {
        "columns": columns,
        "rows": [[plain(v) for v in row] for row in rows[:MAX_ROWS]],
        "truncated": len(rows) > MAX_ROWS,
    }


MAX_CACHED_RESULTS = 4096


def cached_rows(tables: TableSet, cursor: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """`query_rows` through the table set's result cache (its tables are read-only)."""
    hit = tables.results.get(sql)
    if hit is None:
        hit = query_rows(cursor, sql)
        if len(tables.results) < MAX_CACHED_RESULTS:
            tables.results[sql] = hit
    return copy.deepcopy(hit)


class AnalysisTools(AnswerTools):
    def __init__(self, world: AnalysisWorld, limits: SandboxLimits | None = None):
        super().__init__()
        self._tables = load_tables(world.dataset)
        self._cursor = self._tables.connection.cursor()
        self._limits = limits or SandboxLimits()

    def _query(self, tool: ToolSpec, arguments: dict[str, Any]) -> Any:
        if tool.name == "list_tables":
            return [{"table": t, "rows": self._count(t)} for t in self._tables.tables]
        if tool.name == "describe_table":
            return self._describe(arguments["table"])
        if tool.name == "run_sql":
            return cached_rows(self._tables, self._cursor, arguments["query"])
        if tool.name == "run_python":
            result = run_python(arguments["code"], self._tables.data_dir, self._limits)
            if result.error is not None:
                return tool_error(
                    "sandbox_error", f"{result.error}\n{result.stderr[-800:]}".strip()
                )
            return {"stdout": result.stdout, "stderr": result.stderr[-800:]}
        return tool_error("unknown_tool", f"the analysis world has no tool {tool.name!r}")

    def _count(self, table: str) -> int:
        output = cached_rows(self._tables, self._cursor, f'SELECT COUNT(*) FROM "{table}"')
        return int(output["rows"][0][0])

    def _describe(self, table: str) -> Any:
        if table not in self._tables.tables:
            return tool_error(
                "not_found", f"no table {table!r}; tables: {', '.join(self._tables.tables)}"
            )
        columns = cached_rows(self._tables, self._cursor, f'DESCRIBE "{table}"')["rows"]
        sample = cached_rows(
            self._tables, self._cursor, f'SELECT * FROM "{table}" LIMIT {SAMPLE_ROWS}'
        )
        return {
            "table": table,
            "columns": [{"name": c[0], "type": c[1]} for c in columns],
            "sample_rows": sample["rows"],
        }

    def close(self) -> None:
        self._cursor.close()
