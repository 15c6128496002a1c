"""Checks of the constructs that tie rows together or send users to desks: `any_of`
rules, related-rows rules that count (`at_most`), tell people apart (`differ`) or look
back over a date window (`within`), columns that follow a referenced row (`follows`),
conditional uniqueness (`unique` with `when`), and hand-off desks (`desks`).

Each check returns (field path, message) pairs, as `workflow_checks` does.
"""

from __future__ import annotations

import re
from datetime import date

from agentwheel.flywheels.agentic.workflow import (
    SLUG,
    Precondition,
    Step,
    Workflow,
)
from agentwheel.flywheels.agentic.workflow_rules import RelatedRows, UniqueWhen

Problems = list[tuple[str, str]]
_FOLLOWS = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


def check_rows_and_desks(wf: Workflow) -> Problems:
    """Problems of follows, conditional unique groups, desks and the rules that use them."""
    out = _check_follows(wf) + _check_unique_when(wf) + _check_desks(wf)
    if out:
        return out
    for i, step in enumerate(wf.steps):
        for group in ("preconditions", "optional_preconditions"):
            for j, pre in enumerate(getattr(step, group)):
                out += _check_rule(wf, step, pre, f"steps.{i}.{group}.{j}")
    return out


def _check_follows(wf: Workflow) -> Problems:
    out: Problems = []
    for table, spec in wf.tables.items():
        earlier: list[str] = []
        for column, gen in spec.columns.items():
            where = f"tables.{table}.columns.{column}.follows"
            if gen is not None and gen.follows is not None:
                via, _, source = gen.follows.partition(".")
                via_gen = spec.columns.get(via)
                if not _FOLLOWS.match(gen.follows) or via not in earlier or via_gen is None:
                    out.append(
                        (
                            where,
                            f"{gen.follows!r} must be <ref column>.<column>, the ref column an "
                            f"earlier column of {table} (e.g. plan_id.account_id)",
                        )
                    )
                elif via_gen.ref is None:
                    out.append((where, f"{via!r} is not a ref column of {table}"))
                else:
                    parent = via_gen.ref.partition(".")[0]
                    if source not in wf.tables[parent].columns:
                        out.append(
                            (
                                where,
                                f"{source!r} is not a column of {parent} (its columns: "
                                f"{', '.join(wf.tables[parent].columns)})",
                            )
                        )
            earlier.append(column)
    for name, request_gen in wf.request_fields.items():
        if request_gen.follows is not None:
            out.append((f"request_fields.{name}.follows", "request details cannot follow rows"))
    return out


def _check_unique_when(wf: Workflow) -> Problems:
    out: Problems = []
    for table, spec in wf.tables.items():
        for i, group in enumerate(spec.unique):
            if not isinstance(group, UniqueWhen):
                continue
            for column, value in group.when.items():
                gen = spec.columns.get(column)
                listed = gen.listed_values() if gen is not None else None
                if listed is not None and value not in listed:
                    out.append(
                        (
                            f"tables.{table}.unique.{i}.when.{column}",
                            f"{value!r} is not a value of {table}.{column}, which holds one "
                            f"of {listed}, so the group never applies",
                        )
                    )
    return out


def _check_desks(wf: Workflow) -> Problems:
    out: Problems = []
    names = {d.name for d in wf.desks}
    seen: set[str] = set()
    for i, desk in enumerate(wf.desks):
        if not SLUG.match(desk.name) or desk.name in seen or desk.name == "human":
            out.append((f"desks.{i}.name", f"{desk.name!r} is a duplicate, reserved or not a slug"))
        seen.add(desk.name)
    for i, oos in enumerate(wf.out_of_scope):
        if oos.desk is not None and oos.desk not in names:
            out.append((f"out_of_scope.{i}.desk", _unknown_desk(oos.desk, names)))
    return out


def _unknown_desk(desk: str, names: set[str]) -> str:
    return f"no desk {desk!r} (desks: {', '.join(sorted(names)) or 'none; declare it under desks'})"


def _check_rule(wf: Workflow, step: Step, pre: Precondition, where: str) -> Problems:
    out: Problems = []
    if pre.desk is not None:
        names = {d.name: d for d in wf.desks}
        if pre.on_fail != "transfer":
            out.append((f"{where}.desk", "a desk receives a hand-off: set `on_fail: transfer`"))
        elif pre.desk not in names:
            out.append((f"{where}.desk", _unknown_desk(pre.desk, set(names))))
        elif names[pre.desk].spoken.lower() not in pre.rule.lower():
            out.append(
                (
                    f"{where}.rule",
                    f"the rule hands the user to the {names[pre.desk].spoken} but its text "
                    "does not name that desk: the agent picks the hand-off tool from the text; "
                    f"say '... transfer the customer to the {names[pre.desk].spoken}'",
                )
            )
    for alt in pre.alternatives():
        gen = wf.generator(wf.resolve(alt.field, step))
        if gen is not None and gen.follows is not None:
            out.append(
                (
                    f"{where}.field",
                    f"{alt.field!r} follows {gen.follows}: a rule cannot force it; put the rule "
                    "on the column it follows",
                )
            )
    if pre.any_of:
        if pre.insist:
            out.append((f"{where}.insist", "a user insists on one value, not on an any_of rule"))
        fields = [wf.resolve(a.field, step) for a in pre.alternatives()]
        if len(set(fields)) != len(fields):
            out.append(
                (
                    f"{where}.any_of",
                    "two alternatives test one field: write one alternative with `in`, or "
                    "a single rule",
                )
            )
    if pre.related is not None:
        out += _check_related(wf, pre.related, f"{where}.related")
    return out


def _check_related(wf: Workflow, rel: RelatedRows, where: str) -> Problems:
    if rel.table not in wf.tables:
        return []  # construct_checks names the table
    out: Problems = []
    columns = wf.tables[rel.table].columns
    if rel.exist and rel.at_most:
        out.append(
            (
                f"{where}.at_most",
                "exist: true asks for some row; at_most caps how many: use one of them",
            )
        )
    for column, source in rel.differ.items():
        if column not in columns:
            out.append((f"{where}.differ", f"{column!r} is not a column of {rel.table}"))
        elif not wf.has_field(source):
            out.append((f"{where}.differ.{column}", f"unknown field {source!r}"))
    if rel.within is not None:
        gen = columns.get(rel.within.column)
        if gen is None or gen.date is None:
            out.append(
                (
                    f"{where}.within.column",
                    f"{rel.within.column!r} is not a date column of {rel.table}",
                )
            )
        of = rel.within.of
        of_gen = wf.generator(of) if "." in of else None
        if "." in of and (of_gen is None or of_gen.date is None):
            out.append((f"{where}.within.of", f"{of!r} is not a date field"))
        elif "." not in of:
            try:
                date.fromisoformat(of)
            except ValueError:
                out.append(
                    (
                        f"{where}.within.of",
                        f"{of!r} is not an ISO date or a date field: write the day the window "
                        'ends ("today" in the background), e.g. "2025-06-02"',
                    )
                )
    return out
