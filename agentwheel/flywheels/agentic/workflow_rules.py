"""The parts of a workflow that state rules about rows: a condition (`field op value`),
rules over other rows (`related`: none, at most n, or some, optionally another person's
or within a date window), marks a row puts on the row it references (`sets`), groups of
columns no two rows share (`unique`, optionally only among rows with given values), and
the desks a failed rule or an out-of-scope request is handed to (`desks`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = str | int | float
Op = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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


class Condition(_Strict):
    """One alternative of an `any_of` rule: `field op value` (or `op <value of value_from>`)."""

    field: str
    op: Op
    value: Scalar | list[Scalar] | None = None
    value_from: str | None = None


class Window(_Strict):
    """Rows whose date `column` lies within `days` days up to `of` (an ISO date, or a date
    field such as `request.visit_date`), both ends included: "in the last 30 days"."""

    column: str
    days: int = Field(ge=1)
    of: str


class RelatedRows(_Strict):
    """Other rows of `table` that a rule counts.

    A row counts when each `match` column equals a field of the task (`table.column` of a
    target row, or `request.name`), each `differ` column does not ("a hold by *another*
    member"), each `where` column equals its constant and, with `within`, its date lies in
    the window; the target row of `table` itself never counts. The rule holds when at most
    `at_most` rows count (0: none may), or with `exist: true`, when one does.
    """

    table: str
    match: dict[str, str] = Field(min_length=1)
    differ: dict[str, str] = Field(default_factory=dict)
    where: dict[str, Scalar] = Field(default_factory=dict)
    within: Window | None = None
    at_most: int = Field(default=0, ge=0)
    exist: bool = False

    def shown_columns(self) -> list[str]:
        """The columns that say why a row counts, which a listing must show."""
        window = [self.within.column] if self.within is not None else []
        return list(dict.fromkeys([*self.match, *self.differ, *self.where, *window]))


class SetsReferenced(_Strict):
    """What a row says about the row it references: a rental that is `active` makes its
    vehicle's `status` `rented`. In every world, a referenced row has `column = value`
    exactly when some row of this table with the `when` values references it (a vehicle
    marked rented without an active rental gets another value of its generator)."""

    ref: str
    when: dict[str, Scalar] = Field(default_factory=dict)
    column: str
    value: Scalar


class UniqueWhen(_Strict):
    """Columns no two rows share among the rows that have the `when` values (an item is on
    at most one *active* loan)."""

    columns: list[str] = Field(min_length=1)
    when: dict[str, Scalar] = Field(min_length=1)


class Desk(_Strict):
    """A hand-off target besides the `transfer` one: its own tool, which records the desk
    with the hand-off. A rule (`on_fail: transfer`, `desk: <name>`) or an out-of-scope kind
    (`desk: <name>`) sends the user there; `spoken` is how the policy names the desk."""

    name: str
    tool: str
    spoken: str
    description: str = ""
