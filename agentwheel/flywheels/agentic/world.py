"""Seeded SQLite worlds for one branch: realistic rows whose target records satisfy or
violate exactly the preconditions the branch demands.

Every table gets several rows from its column generators (distractor customers, other
orders of the same customer, ...). The *target* row of each table the branch touches is
then forced: its references point at the parent's target row, and each constrained field
takes a value that makes every demanded precondition hold or fail. Values near a rule's
threshold (exactly at a limit, one cent over) are preferred some of the time: those
edge cases are where small agents slip. What ties rows to other rows (a column that
follows another, marks on referenced rows, rules over related rows) is `linked_rows`'s.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from faker import Faker

from agentwheel.core.task import SqlTable
from agentwheel.flywheels.agentic.generator_values import (
    GenerationError,
    generate_value,
    produces,
)
from agentwheel.flywheels.agentic.workflow import (
    HANDOFF_TABLE,
    PLACEHOLDER,
    REQUEST,
    ColumnGen,
    Precondition,
    Scalar,
    Workflow,
)

_MAX_ROW_TRIES = 30
_SOURCE_RESAMPLES = 12


@dataclass(frozen=True)
class Demand:
    """A precondition, its field resolved to `table.column` / `request.name`, and whether
    the branch needs it to hold."""

    field: str
    precondition: Precondition
    holds: bool
    value_from: str | None = None

    def threshold(self, context: dict[str, Any]) -> Any:
        return context[self.value_from] if self.value_from else self.precondition.value

    def satisfied_by(self, value: Any, context: dict[str, Any]) -> bool:
        return self.precondition.holds(value, self.threshold(context)) == self.holds


@dataclass
class WorldDraft:
    """Generated rows (column → value), the target row index per touched table, and the
    user's request details."""

    tables: dict[str, list[dict[str, Any]]]
    targets: dict[str, int]
    request: dict[str, Any] = field(default_factory=dict)

    def target(self, table: str) -> dict[str, Any]:
        return self.tables[table][self.targets[table]]

    def context(self) -> dict[str, Any]:
        """Every field of the target rows and the request, as `table.column` → value."""
        ctx = {f"{REQUEST}.{k}": v for k, v in self.request.items()}
        for table in self.targets:
            ctx.update({f"{table}.{c}": v for c, v in self.target(table).items()})
        return ctx


def make_faker(seed: int) -> Faker:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    return fake


@dataclass(frozen=True)
class UniqueGroup:
    """Columns no two rows share, among the rows that have the `when` values (all rows
    when there are none)."""

    columns: tuple[str, ...]
    when: tuple[tuple[str, Any], ...] = ()

    def applies(self, row: dict[str, Any]) -> bool:
        return all(row[c] == v for c, v in self.when)

    def shared_by(self, row: dict[str, Any], other: dict[str, Any]) -> bool:
        return (
            all(row[c] == other[c] for c in self.columns)
            and self.applies(row)
            and self.applies(other)
        )


def unique_groups(wf: Workflow, table: str) -> list[UniqueGroup]:
    """Column groups no two rows of `table` share: the key, declared groups (some only
    among rows with given values), identifiers."""
    spec = wf.tables[table]
    groups = [
        UniqueGroup(tuple(g))
        if isinstance(g, list)
        else UniqueGroup(tuple(g.columns), tuple(g.when.items()))
        for g in spec.unique
    ]
    if spec.key is not None:
        groups.append(UniqueGroup((spec.key,)))
    for ident in wf.identifiers:
        t, _, column = ident.field.partition(".")
        if t == table:
            groups.append(UniqueGroup((column,)))
    return list(dict.fromkeys(groups))


def collides(
    row: dict[str, Any], others: Iterable[dict[str, Any]], groups: list[UniqueGroup]
) -> bool:
    """Whether `row` shares a unique column group with any other row of `others`."""
    for other in others:
        if other is row:
            continue
        if any(g.shared_by(row, other) for g in groups):
            return True
    return False


def fill_follows(
    wf: Workflow, table: str, row: dict[str, Any], tables: dict[str, list[dict[str, Any]]]
) -> None:
    """Set the row's `follows` columns from the rows its ref columns point at."""
    spec = wf.tables[table]
    for column, gen in spec.columns.items():
        if gen is None or gen.follows is None:
            continue
        via, _, source = gen.follows.partition(".")
        ref_gen = spec.columns[via]
        assert ref_gen is not None and ref_gen.ref is not None
        parent, _, key = ref_gen.ref.partition(".")
        pointed = next((r for r in tables.get(parent, []) if r[key] == row[via]), None)
        row[column] = pointed[source] if pointed is not None else None


def generate_rows(
    wf: Workflow, rng: random.Random, fake: Faker, at_least_one: set[str]
) -> dict[str, list[dict[str, Any]]]:
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, spec in wf.tables.items():
        lo, hi = spec.row_range
        count = rng.randint(lo, hi)
        if name in at_least_one:
            if hi == 0:
                raise GenerationError(f"table {name!r} starts empty but the branch needs a row")
            count = max(count, 1)
        groups = unique_groups(wf, name)
        rows: list[dict[str, Any]] = []
        tables[name] = rows
        # The unique values taken so far, so a new row is checked in constant time (a scan
        # of the rows made a 10,000-row table take minutes).
        taken: set[tuple[UniqueGroup, tuple[Any, ...]]] = set()
        for _ in range(count):
            for _try in range(_MAX_ROW_TRIES):
                row: dict[str, Any] = {}
                for column, gen in spec.columns.items():
                    row[column] = (
                        None if gen is None else generate_value(gen, rng, fake, row, tables)
                    )
                fill_follows(wf, name, row, tables)
                keys = {(g, tuple(row[c] for c in g.columns)) for g in groups if g.applies(row)}
                if taken.isdisjoint(keys):
                    rows.append(row)
                    taken |= keys
                    break
    return tables


def involved_tables(wf: Workflow, fields: Iterable[str]) -> list[str]:
    """Tables whose target row the branch reads, plus the tables they reference."""
    wanted = {f.partition(".")[0] for f in fields} - {REQUEST}
    changed = True
    while changed:
        changed = False
        for table in list(wanted):
            for gen in wf.tables[table].columns.values():
                if gen is not None and gen.ref is not None:
                    parent = gen.ref.partition(".")[0]
                    if parent not in wanted:
                        wanted.add(parent)
                        changed = True
    return [t for t in wf.tables if t in wanted]


def referenced_fields(wf: Workflow) -> list[str]:
    """Fields the tasks of `wf` mention: identifiers, step arguments, phrasing placeholders."""
    fields = [i.field for i in wf.identifiers]
    for step in wf.steps:
        fields += [wf.resolve(src, step) for src in step.args.values()]
    texts = [*wf.phrasing.intents, *wf.phrasing.reasons]
    for oos in wf.out_of_scope:
        texts += oos.requests
    for _, pre, _ in wf.all_preconditions():
        texts += [*pre.false_claims, pre.cue, *pre.insist]
    for text in texts:
        fields += PLACEHOLDER.findall(text)
    if wf.user_table is not None:
        fields.append(f"{wf.user_table}.{wf.name_column or wf.tables[wf.user_table].key}")
    return list(dict.fromkeys(fields))


def _numeric_neighbours(gen: ColumnGen, t: float) -> list[Scalar]:
    if gen.money is not None:
        step = round(max(abs(t) * 0.15, 5.0), 2)
        return [
            round(t, 2),
            round(t + 0.01, 2),
            round(t - 0.01, 2),
            round(t + step, 2),
            round(t - step, 2),
        ]
    t_int = int(t)
    return [t_int, t_int + 1, t_int - 1]


def _date_neighbours(t: str) -> list[Scalar]:
    try:
        day = date.fromisoformat(t)
    except ValueError:
        return [t]
    return [t, (day + timedelta(days=1)).isoformat(), (day - timedelta(days=1)).isoformat()]


def candidates(
    gen: ColumnGen,
    thresholds: list[Any],
    rng: random.Random,
    fake: Faker,
    tables: dict[str, list[dict[str, Any]]],
    row: dict[str, Any] | None = None,
) -> tuple[list[Scalar], list[Scalar]]:
    """(ordinary values the generator would produce, values at the rules' thresholds)."""
    listed = gen.listed_values()
    if listed is not None:
        base: list[Scalar] = listed
    elif gen.ref is not None:
        parent, _, column = gen.ref.partition(".")
        base = [r[column] for r in tables.get(parent, [])]
    else:
        base = [generate_value(gen, rng, fake, row, tables) for _ in range(10)]
    edges: list[Scalar] = []
    for t in thresholds:
        for value in t if isinstance(t, list) else [t]:
            if gen.numeric and isinstance(value, int | float) and not isinstance(value, bool):
                edges += _numeric_neighbours(gen, value)
            elif gen.date is not None and isinstance(value, str):
                edges += _date_neighbours(value)
            else:
                edges.append(value)
    # An edge the generator could never make (7 in a choice of 1..6, a threshold's
    # neighbour past the range's end) would be an impossible value in the data.
    edges = [e for e in edges if produces(gen, e) is not False]
    return base, list(dict.fromkeys(edges))


def pick_value(
    gen: ColumnGen,
    demands: list[Demand],
    context: dict[str, Any],
    rng: random.Random,
    fake: Faker,
    tables: dict[str, list[dict[str, Any]]],
    boundary_rate: float,
    row: dict[str, Any] | None = None,
) -> Scalar:
    """A value meeting every demand (hold or fail), at a threshold with `boundary_rate`."""
    thresholds = [d.threshold(context) for d in demands]
    base, edges = candidates(gen, thresholds, rng, fake, tables, row)
    ok_base = [v for v in base if all(d.satisfied_by(v, context) for d in demands)]
    ok_edges = [v for v in edges if all(d.satisfied_by(v, context) for d in demands)]
    if ok_edges and (not ok_base or rng.random() < boundary_rate):
        return rng.choice(ok_edges)
    if ok_base:
        return rng.choice(ok_base)
    names = ", ".join(f"{d.precondition.id}={'hold' if d.holds else 'fail'}" for d in demands)
    raise GenerationError(f"no value of {demands[0].field} meets {names}")


def can_hold_and_fail(wf: Workflow, field: str, pre: Precondition) -> bool:
    """Whether the field's generator can satisfy and violate a constant-threshold rule."""
    gen = wf.generator(field)
    if gen is None or gen.ref is not None:
        return True
    rng, fake = random.Random(0), make_faker(0)
    for holds in (True, False):
        demand = Demand(field, pre, holds)
        try:
            pick_value(gen, [demand], {}, rng, fake, {}, 0.0)
        except GenerationError:
            return False
    return True


def build_world(
    wf: Workflow,
    demands: list[Demand],
    seed: int,
    boundary_rate: float = 0.25,
    fake: Faker | None = None,
) -> WorldDraft:
    """Rows for every table; target rows and request details meet `demands`.

    Raises `GenerationError` when the generators cannot meet them.
    """
    rng = random.Random(seed)
    fake = fake or make_faker(seed)
    fake.seed_instance(seed)
    # Rules over related rows are met afterwards (`linked_rows`); their fields are touched.
    related = [d.precondition.related for d in demands if d.precondition.related is not None]
    demands = [d for d in demands if d.precondition.related is None]
    fields = referenced_fields(wf) + [d.field for d in demands]
    fields += [d.value_from for d in demands if d.value_from]
    fields += [source for rel in related for source in rel.match.values()]
    touched = involved_tables(wf, fields)
    tables = generate_rows(wf, rng, fake, set(touched))
    targets = {t: rng.randrange(len(tables[t])) for t in touched}
    draft = WorldDraft(tables=tables, targets=targets)
    for name, request_gen in wf.request_fields.items():
        draft.request[name] = generate_value(request_gen, rng, fake)
    # The target rows belong together: an order's customer is the user, and so on.
    for table in touched:
        for column, column_gen in wf.tables[table].columns.items():
            if column_gen is not None and column_gen.ref is not None:
                parent, _, key = column_gen.ref.partition(".")
                draft.target(table)[column] = draft.target(parent)[key]
        fill_follows(wf, table, draft.target(table), tables)
    by_field: dict[str, list[Demand]] = {}
    for demand in demands:
        by_field.setdefault(demand.field, []).append(demand)
    # Fields compared with another field are decided after that field is final.
    order = sorted(by_field, key=lambda f: any(d.value_from for d in by_field[f]))
    for name in order:
        group = by_field[name]
        table, _, column = name.partition(".")
        field_gen = wf.generator(name)
        assert field_gen is not None
        row = draft.request if table == REQUEST else draft.target(table)
        sources = [d.value_from for d in group if d.value_from and d.value_from not in by_field]
        for attempt in range(_SOURCE_RESAMPLES + 1):
            try:
                row[column] = pick_value(
                    field_gen, group, draft.context(), rng, fake, tables, boundary_rate, row
                )
                break
            except GenerationError:
                # "amount > balance but ≤ 2500" needs a small balance: redraw the free
                # fields this one is compared with, then try again.
                if attempt == _SOURCE_RESAMPLES or not sources:
                    raise
                for source in sources:
                    _redraw(wf, draft, source, rng, fake)
    _separate_distractors(wf, draft, rng, fake, touched)
    context = draft.context()
    for demand in demands:
        if not demand.satisfied_by(context[demand.field], context):
            raise GenerationError(f"{demand.precondition.id} did not come out as demanded")
    return draft


def _redraw(wf: Workflow, draft: WorldDraft, field: str, rng: random.Random, fake: Faker) -> None:
    table, _, column = field.partition(".")
    gen = wf.generator(field)
    if gen is None or gen.ref is not None:
        return
    row = draft.request if table == REQUEST else draft.target(table)
    row[column] = generate_value(gen, rng, fake, row, draft.tables)


def _separate_distractors(
    wf: Workflow, draft: WorldDraft, rng: random.Random, fake: Faker, touched: list[str]
) -> None:
    """Regenerate distractor rows that collide with a forced target on a unique group."""
    referenced = {
        gen.ref.partition(".")[0]
        for spec in wf.tables.values()
        for gen in spec.columns.values()
        if gen is not None and gen.ref is not None
    }
    for table in touched:
        rows, target = draft.tables[table], draft.target(table)
        groups = unique_groups(wf, table)
        spec = wf.tables[table]
        for row in list(rows):
            if row is target or not collides(row, [target], groups):
                continue
            for _try in range(_MAX_ROW_TRIES):
                for group in groups:
                    for column in group.columns:
                        gen = spec.columns[column]
                        if gen is not None and column != spec.key:
                            row[column] = generate_value(gen, rng, fake, row, draft.tables)
                if not collides(row, rows, groups):
                    break
            else:
                if table in referenced:
                    raise GenerationError(f"cannot keep {table} rows distinct")
                rows[:] = [r for r in rows if r is not row]
        draft.targets[table] = next(i for i, r in enumerate(rows) if r is target)


def to_tables(wf: Workflow, draft: WorldDraft) -> dict[str, SqlTable]:
    """The draft as the task's SQLite tables, plus the empty hand-off log."""
    tables = {
        name: SqlTable(
            columns=list(spec.columns),
            rows=[[row[c] for c in spec.columns] for row in draft.tables[name]],
        )
        for name, spec in wf.tables.items()
    }
    tables[HANDOFF_TABLE] = SqlTable(columns=wf.handoff_columns())
    return tables


def render_value(gen: ColumnGen | None, value: Any, rng: random.Random) -> str:
    """A value as a user would write it. The literal value always appears in the text
    ($1250.50, 2025-06-24, a choice inside its paraphrase), so every tool argument can be
    traced back to what the user said."""
    if gen is not None:
        said = gen.say.get(str(value))
        if said:
            return rng.choice(said) if isinstance(said, list) else said
        if gen.format == "money" and isinstance(value, int | float):
            text = f"${value:.2f}"
            return text[:-3] if text.endswith(".00") else text
        if gen.format == "int" and isinstance(value, float) and value.is_integer():
            return str(int(value))
        if gen.format == "date" and isinstance(value, str):
            try:
                weekday = date.fromisoformat(value).strftime("%A")
            except ValueError:
                return value
            return rng.choice([value, f"{weekday} {value}", f"{value} (a {weekday})"])
    return str(value)
