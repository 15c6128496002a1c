"""Rows that depend on other rows, applied to a world `build_world` drafted.

- a column that follows another of its row (`map`: a vehicle's class follows its model)
  stays in step with it on the target rows, whichever of the two a rule forced;
- a rule over related rows ("no other confirmed booking for the same check-in date", "at
  most one other request in 30 days") is met by editing the other rows: matching rows are
  added, or changed (a `where` column, else the date out of the window, else the row made
  the same person's, else a matched column) until the count is as demanded;
- a column that follows a referenced row (`follows`) is copied from that row;
- marks on referenced rows (`TableSpec.sets`: an active rental makes its vehicle rented)
  are applied last, over every row, so the data never contradicts itself.

Then every demand and the workflow's invariants (`world_invariants`) are checked; a world
that does not come out as demanded raises `GenerationError`, a counted rejection after
the retries.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from faker import Faker

from agentwheel.flywheels.agentic.seeds import derive_seed
from agentwheel.flywheels.agentic.workflow import ColumnGen, Precondition, RelatedRows, Workflow
from agentwheel.flywheels.agentic.world import (
    Demand,
    GenerationError,
    WorldDraft,
    build_world,
    collides,
    fill_follows,
    generate_value,
    make_faker,
    unique_groups,
)
from agentwheel.flywheels.agentic.world_invariants import INVARIANTS_BROKEN, world_violations

_MAX_ROW_TRIES = 30


def build_linked_world(
    wf: Workflow,
    demands: list[Demand],
    seed: int,
    boundary_rate: float = 0.25,
    fake: Faker | None = None,
) -> WorldDraft:
    """`build_world`, then mapped and following columns, related-rows rules and marks;
    every demand and the workflow's invariants (`world_invariants`) are checked on the
    result. Raises `GenerationError` when they are not met."""
    fake = fake or make_faker(seed)
    draft = build_world(wf, demands, seed, boundary_rate, fake)
    if _has_links(wf, demands):
        _link(wf, draft, demands, seed, fake)
    violations = world_violations(wf, draft.tables)
    if violations:
        raise GenerationError(f"{INVARIANTS_BROKEN}: {violations[0]}")
    return draft


def _link(wf: Workflow, draft: WorldDraft, demands: list[Demand], seed: int, fake: Faker) -> None:
    rng = random.Random(derive_seed(seed, "linked_rows"))
    forced = {d.field for d in demands if d.precondition.related is None}
    _follow_maps(wf, draft, forced, rng)
    for demand in demands:
        if demand.precondition.related is not None:
            _meet_related(wf, draft, demand, rng, fake)
    _apply_sets(wf, draft, rng, fake)
    for table in wf.tables:
        for row in draft.tables[table]:
            fill_follows(wf, table, row, draft.tables)
    context = draft.context()
    for demand in demands:
        pre = demand.precondition
        came_out = (
            related_rule_holds(draft, pre) == demand.holds
            if pre.related is not None
            else demand.satisfied_by(context[demand.field], context)
        )
        if not came_out:
            raise GenerationError(f"{pre.id} did not come out as demanded")


def _has_links(wf: Workflow, demands: list[Demand]) -> bool:
    return (
        any(d.precondition.related is not None for d in demands)
        or any(spec.sets for spec in wf.tables.values())
        or any(
            gen is not None and (gen.map is not None or gen.follows is not None)
            for spec in wf.tables.values()
            for gen in spec.columns.values()
        )
    )


def _follow_maps(wf: Workflow, draft: WorldDraft, forced: set[str], rng: random.Random) -> None:
    """Keep target rows' mapped columns in step with their source: a forced mapped value
    ("commercial") picks a source that maps to it (a van model); otherwise the mapped
    column follows the (possibly forced) source."""
    for table in draft.targets:
        row = draft.target(table)
        for column, gen in wf.tables[table].columns.items():
            if gen is None or gen.map is None:
                continue
            source, values = gen.map.column, gen.map.values
            if f"{table}.{column}" in forced and values.get(str(row[source])) != row[column]:
                keys = [k for k, v in values.items() if v == row[column]]
                if not keys:
                    raise GenerationError(f"no {source} maps to {table}.{column}={row[column]!r}")
                source_gen = wf.tables[table].columns[source]
                choices = source_gen.listed_values() if source_gen is not None else None
                key = rng.choice(keys)
                row[source] = next((c for c in choices or [] if str(c) == key), key)
            else:
                row[column] = values[str(row[source])]


def _apply_sets(wf: Workflow, draft: WorldDraft, rng: random.Random, fake: Faker) -> None:
    """Mark referenced rows (`TableSpec.sets`): a vehicle with an active rental is rented,
    and one marked rented without such a rental gets another value."""
    for table, spec in wf.tables.items():
        for rule in spec.sets:
            ref_gen = spec.columns[rule.ref]
            assert ref_gen is not None and ref_gen.ref is not None
            parent, _, key = ref_gen.ref.partition(".")
            marked = {
                row[rule.ref]
                for row in draft.tables[table]
                if all(row[c] == v for c, v in rule.when.items())
            }
            gen = wf.tables[parent].columns[rule.column]
            for row in draft.tables[parent]:
                if row[key] in marked:
                    row[rule.column] = rule.value
                elif row[rule.column] == rule.value and gen is not None:
                    row[rule.column] = _other_than(gen, rule.value, row, draft, rng, fake)


def _other_than(
    gen: ColumnGen,
    value: Any,
    row: dict[str, Any],
    draft: WorldDraft,
    rng: random.Random,
    fake: Faker,
) -> Any:
    listed = gen.listed_values()
    options = [v for v in listed or [] if v != value]
    if options:
        return rng.choice(options)
    for _try in range(_MAX_ROW_TRIES):
        other = generate_value(gen, rng, fake, row, draft.tables)
        if other != value:
            return other
    raise GenerationError(f"the generator cannot give anything but {value!r}")


def related_rows(draft: WorldDraft, pre: Precondition) -> list[dict[str, Any]]:
    """The rows a related-rows rule counts: other rows of its table that match."""
    rel = pre.related
    assert rel is not None
    context = draft.context()
    target = draft.target(rel.table) if rel.table in draft.targets else None
    window = _window(rel, context)
    return [
        row
        for row in draft.tables[rel.table]
        if row is not target
        and all(row[c] == context[src] for c, src in rel.match.items())
        and all(row[c] != context[src] for c, src in rel.differ.items())
        and all(row[c] == v for c, v in rel.where.items())
        and (window is None or _in_window(row[window[0]], window))
    ]


def _window(rel: RelatedRows, context: dict[str, Any]) -> tuple[str, date, date] | None:
    """(column, first day, last day) of the rule's date window, or None."""
    if rel.within is None:
        return None
    last = date.fromisoformat(str(context.get(rel.within.of, rel.within.of)))
    return rel.within.column, last - timedelta(days=rel.within.days), last


def _in_window(value: Any, window: tuple[str, date, date]) -> bool:
    try:
        return window[1] <= date.fromisoformat(str(value)) <= window[2]
    except ValueError:
        return False


def related_rule_holds(draft: WorldDraft, pre: Precondition) -> bool:
    rel = pre.related
    assert rel is not None
    count = len(related_rows(draft, pre))
    return count >= 1 if rel.exist else count <= rel.at_most


def _meet_related(
    wf: Workflow, draft: WorldDraft, demand: Demand, rng: random.Random, fake: Faker
) -> None:
    """Edit the other rows so the related-rows rule holds or fails as demanded."""
    pre = demand.precondition
    rel = pre.related
    assert rel is not None
    if rel.exist:
        low, high = (1, None) if demand.holds else (0, 0)
    else:
        low, high = (0, rel.at_most) if demand.holds else (rel.at_most + 1, None)
    if rel.at_most and demand.holds and rng.random() < 0.5:
        low = rel.at_most  # at the limit: where small agents slip
    while len(related_rows(draft, pre)) < low:
        _add_related_row(wf, draft, pre, rng, fake)
    counted = related_rows(draft, pre)
    for row in counted[high:] if high is not None else []:
        _break_match(wf, draft, pre, row, rng, fake)


def _add_related_row(
    wf: Workflow, draft: WorldDraft, pre: Precondition, rng: random.Random, fake: Faker
) -> None:
    rel = pre.related
    assert rel is not None
    spec = wf.tables[rel.table]
    rows = draft.tables[rel.table]
    context = draft.context()
    groups = unique_groups(wf, rel.table)
    for _try in range(_MAX_ROW_TRIES):
        row: dict[str, Any] = {}
        for column, gen in spec.columns.items():
            row[column] = None if gen is None else generate_value(gen, rng, fake, row, draft.tables)
        row.update({c: context[src] for c, src in rel.match.items()})
        row.update(rel.where)
        for column, src in rel.differ.items():
            row[column] = _other_value(wf, draft, rel.table, column, context[src], row, rng, fake)
        window = _window(rel, context)
        if window is not None:
            inside = _window_date(wf, rel.table, window, rng, inside=True)
            if inside is None:
                raise GenerationError(f"no date of {rel.table}.{window[0]} is in {pre.id}'s window")
            row[window[0]] = inside
        for column in rel.match:
            _point_at(wf, draft, rel.table, row, column, rng)
        fill_follows(wf, rel.table, row, draft.tables)
        for column, gen in spec.columns.items():
            if gen is not None and gen.map is not None:
                row[column] = gen.map.values.get(str(row[gen.map.column]), row[column])
        if not collides(row, rows, groups):
            # Appended, so the target row indexes stay valid.
            rows.append(row)
            return
    raise GenerationError(f"cannot add a {rel.table} row that {pre.id} counts")


def _break_match(
    wf: Workflow,
    draft: WorldDraft,
    pre: Precondition,
    row: dict[str, Any],
    rng: random.Random,
    fake: Faker,
) -> None:
    """Change a `where` column, else move the row's date out of the window, else make it
    the same person's, else change a matched column, so the row no longer counts."""
    rel = pre.related
    assert rel is not None
    if any(_change_column(wf, draft, rel.table, row, c, rng, fake) for c in rel.where):
        return
    context = draft.context()
    window = _window(rel, context)
    moved = _window_date(wf, rel.table, window, rng, inside=False) if window else None
    if window is not None and moved is not None:
        row[window[0]] = moved
        return
    for column, src in rel.differ.items():
        # The same person's row is not "another member's".
        row[column] = context[src]
        fill_follows(wf, rel.table, row, draft.tables)
        return
    if any(_change_column(wf, draft, rel.table, row, c, rng, fake) for c in rel.match):
        return
    raise GenerationError(f"cannot keep a {rel.table} row out of {pre.id}")


def _change_column(
    wf: Workflow,
    draft: WorldDraft,
    table: str,
    row: dict[str, Any],
    column: str,
    rng: random.Random,
    fake: Faker,
) -> bool:
    """Give the row's column another value of its generator; False when there is none."""
    spec = wf.tables[table]
    gen = spec.columns[column]
    if gen is None or column == spec.key or gen.follows is not None:
        return False
    if gen.ref is not None:
        parent, _, key = gen.ref.partition(".")
        options: list[Any] = [r[key] for r in draft.tables[parent] if r[key] != row[column]]
    else:
        listed = gen.listed_values()
        options = (
            [v for v in listed if v != row[column]]
            if listed is not None and gen.map is None
            else [generate_value(gen, rng, fake, row, draft.tables) for _ in range(5)]
        )
        options = [v for v in options if v != row[column]]
    if not options:
        return False
    row[column] = rng.choice(options)
    fill_follows(wf, table, row, draft.tables)
    return True


def _point_at(
    wf: Workflow,
    draft: WorldDraft,
    table: str,
    row: dict[str, Any],
    column: str,
    rng: random.Random,
) -> None:
    """For a `follows` column that must hold row[column], point its ref at a row that has
    that value (a renewal request of this patient names one of this patient's
    prescriptions)."""
    gen = wf.tables[table].columns[column]
    if gen is None or gen.follows is None:
        return
    via, _, source = gen.follows.partition(".")
    via_gen = wf.tables[table].columns[via]
    assert via_gen is not None and via_gen.ref is not None
    parent, _, key = via_gen.ref.partition(".")
    options = [r[key] for r in draft.tables[parent] if r[source] == row[column]]
    if not options:
        raise GenerationError(f"no {parent} row has {source} = {row[column]!r}")
    row[via] = rng.choice(options)


def _other_value(
    wf: Workflow,
    draft: WorldDraft,
    table: str,
    column: str,
    value: Any,
    row: dict[str, Any],
    rng: random.Random,
    fake: Faker,
) -> Any:
    """A value of the column other than `value` (another member's key for a ref)."""
    gen = wf.tables[table].columns[column]
    assert gen is not None
    if gen.ref is not None:
        parent, _, key = gen.ref.partition(".")
        options = [r[key] for r in draft.tables[parent] if r[key] != value]
        if not options:
            raise GenerationError(f"no other {parent} row to tell apart from {value!r}")
        return rng.choice(options)
    return _other_than(gen, value, row, draft, rng, fake)


def _window_date(
    wf: Workflow, table: str, window: tuple[str, date, date], rng: random.Random, inside: bool
) -> str | None:
    """A date of the column's generator inside (or outside) the window; None when the
    generator has none there."""
    column, first, last = window
    gen = wf.tables[table].columns[column]
    assert gen is not None and gen.date is not None
    lo, hi = (date.fromisoformat(d) for d in gen.date)
    days = [lo + timedelta(days=k) for k in range((hi - lo).days + 1)]
    fitting = [d for d in days if (first <= d <= last) == inside]
    return rng.choice(fitting).isoformat() if fitting else None
