"""The invariants a workflow states about its worlds, checked on a generated world: the
checks a careful author would write by hand.

- no two rows share a unique column group (the key, an identifier, a declared `unique`
  group, a conditional one among the rows it names);
- every ref points at an existing row; a `follows` column equals the column of the row its
  ref points at; a `map` column equals its source's mapped value;
- a `sets` mark is on exactly the rows referenced by a row with the `when` values;
- a record referenced by two rows agrees on the columns they share: a bill that points at
  a plan and an account has the plan's account.

`world_violations` lists what a world breaks; `linked_rows` rejects such a world and
`synth` reports the check over every task it writes.
"""

from __future__ import annotations

from typing import Any

from agentwheel.core.task import SqlTable
from agentwheel.flywheels.agentic.workflow import ColumnGen, Workflow
from agentwheel.flywheels.agentic.world import unique_groups

Rows = dict[str, list[dict[str, Any]]]
INVARIANTS_BROKEN = "the world breaks the workflow's invariants"


def world_violations(wf: Workflow, tables: Rows) -> list[str]:
    """What the rows break of the workflow's invariants ([] when nothing)."""
    out: list[str] = []
    for table in wf.tables:
        out += _unique(wf, table, tables)
        out += _references(wf, table, tables)
        out += _marks(wf, table, tables)
    return out


def task_rows(wf: Workflow, sql_tables: dict[str, SqlTable]) -> Rows:
    """A task's SQLite tables as rows (column → value), the workflow's tables only."""
    return {
        name: [dict(zip(t.columns, row, strict=True)) for row in t.row_tuples()]
        for name, t in sql_tables.items()
        if name in wf.tables
    }


def _unique(wf: Workflow, table: str, tables: Rows) -> list[str]:
    out = []
    rows = tables[table]
    for group in unique_groups(wf, table):
        seen: dict[tuple[Any, ...], int] = {}
        for i, row in enumerate(rows):
            if not group.applies(row):
                continue
            values = tuple(row[c] for c in group.columns)
            if values in seen:
                when = f" among rows with {dict(group.when)}" if group.when else ""
                out.append(
                    f"{table} rows {seen[values]} and {i} share {list(group.columns)} = "
                    f"{list(values)}{when}"
                )
            seen.setdefault(values, i)
    return out


def _pointed(wf: Workflow, gen: ColumnGen, value: Any, tables: Rows) -> dict[str, Any] | None:
    assert gen.ref is not None
    parent, _, key = gen.ref.partition(".")
    return next((r for r in tables[parent] if r[key] == value), None)


def _target_table(wf: Workflow, table: str, column: str) -> str | None:
    """The table a column's values are keys of: its ref's, or the followed column's."""
    gen = wf.tables[table].columns.get(column)
    if gen is None:
        return None
    if gen.ref is not None:
        return gen.ref.partition(".")[0]
    if gen.follows is not None:
        via, _, source = gen.follows.partition(".")
        via_gen = wf.tables[table].columns[via]
        assert via_gen is not None and via_gen.ref is not None
        return _target_table(wf, via_gen.ref.partition(".")[0], source)
    return None


def _references(wf: Workflow, table: str, tables: Rows) -> list[str]:
    out = []
    spec = wf.tables[table]
    for i, row in enumerate(tables[table]):
        for column, gen in spec.columns.items():
            if gen is None or row[column] is None:
                continue
            where = f"{table} row {i}: {column} = {row[column]!r}"
            if gen.map is not None and gen.map.values.get(str(row[gen.map.column])) != row[column]:
                out.append(f"{where}, but its map gives {gen.map.column} = {row[gen.map.column]!r}")
            if gen.follows is not None:
                via, _, source = gen.follows.partition(".")
                via_gen = spec.columns[via]
                assert via_gen is not None
                parent = _pointed(wf, via_gen, row[via], tables)
                if parent is None or parent[source] != row[column]:
                    out.append(f"{where}, but the row {via} points at has another {source}")
            if gen.ref is None:
                continue
            parent = _pointed(wf, gen, row[column], tables)
            if parent is None:
                out.append(f"{where} points at no row")
                continue
            # A record referenced by two rows agrees on the columns they share.
            ref_table = gen.ref.partition(".")[0]
            for shared in sorted(set(spec.columns) & set(wf.tables[ref_table].columns) - {column}):
                kind = _target_table(wf, table, shared)
                same_kind = kind is not None and kind == _target_table(wf, ref_table, shared)
                if same_kind and row[shared] != parent[shared]:
                    out.append(
                        f"{where} has {shared} = {parent[shared]!r}, but the row has "
                        f"{shared} = {row[shared]!r}"
                    )
    return out


def _marks(wf: Workflow, table: str, tables: Rows) -> list[str]:
    out = []
    spec = wf.tables[table]
    for rule in spec.sets:
        gen = spec.columns[rule.ref]
        assert gen is not None and gen.ref is not None
        parent, _, key = gen.ref.partition(".")
        marked = {
            r[rule.ref] for r in tables[table] if all(r[c] == v for c, v in rule.when.items())
        }
        for i, row in enumerate(tables[parent]):
            if (row[rule.column] == rule.value) != (row[key] in marked):
                out.append(
                    f"{parent} row {i}: {rule.column} = {row[rule.column]!r} although "
                    f"{'a' if row[key] in marked else 'no'} {table} row with {rule.when} "
                    "points at it"
                )
    return out
