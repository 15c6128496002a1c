"""Harder analysis questions from ones a policy was tested on (`agentwheel evolve analysis`).

A question is rebuilt from its task (the request, the gold query, the distractor query the
hack path runs) and made one step harder by an operator, each a new condition the agent
has to notice and get right, with the parent's trap kept beside it:

- `date_window`: only one year counts (orders placed, or customers signed up, in it);
- `filter_hop`: only orders by customers of one city (one more join: orders → customers);
- `null_trap`: customers of one segment left out, those with no segment kept in (the
  trap: `segment <> 'x'` silently drops the NULLs too);
- `not_in_data`: a restriction on something no table records (gift-card payments, a
  newsletter opt-in): the honest answer is "not in the data", the trap the parent's value;
- `clarify`: the month's or quarter's year left out of the request (the user says it when
  asked; the trap assumes another year).

An operator applies only where it makes sense (no second year on a dated question, no
changed population under a ranking, whose ties the parent was checked for). Each parent
gets the first operator, in an order rotated per parent so a batch spreads over them
(`not_in_data`, which fits every question, last), whose variant passes the gate (the gold query answers, the oracle passes, the blind,
distractor and, for an ambiguous question, guessing shortcuts fail).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from agentwheel.core.task import Lineage, Task
from agentwheel.envs.shop_data import CITIES, SEGMENTS
from agentwheel.envs.tables import TableSet, load_tables
from agentwheel.flywheels.agentic.synth import counts_by_reason
from agentwheel.flywheels.industrial.analysis_tasks import (
    YEARS,
    Draft,
    ambiguous_period,
    analysis_task,
)
from agentwheel.flywheels.industrial.gate import gate_industrial

_ORDERS_ALIASED = re.compile(r"\borders o\b")
_CUSTOMERS_ALIASED = re.compile(r"\bcustomers c\b")
_POPULATION_KINDS = ("number", "set")  # no ranking: a new population may tie it


def draft_of(task: Task) -> Draft:
    """The draft an analysis task was built from (its traps are its hack path's query)."""
    assert task.analysis is not None and task.evaluation.answer is not None
    answer = task.evaluation.answer
    described = next(s for s in task.normal_path if s.tool == "describe_table")
    wrong = next(s for s in task.hack_path if s.tool == "run_sql")
    return Draft(
        task.lineage.branch,
        task.user.request,
        task.analysis.gold_sql,
        wrong.arguments["query"],
        answer.kind,
        described.arguments["table"],
        answer.tolerance,
        asks=dict(task.user.known_facts),
    )


def _where(sql: str, condition: str) -> str:
    """`condition` AND-ed in front of the query's first WHERE clause."""
    return sql.replace(" WHERE ", f" WHERE {condition} AND ", 1)


def _ask(question: str, condition: str) -> str:
    return f"{question} {condition}"


def date_window(draft: Draft, rng: random.Random) -> Draft | None:
    sql = draft.gold_sql
    if draft.kind not in _POPULATION_KINDS or "year(" in sql or "strftime" in sql:
        return None
    year = rng.choice(YEARS)
    if _ORDERS_ALIASED.search(sql):
        condition, said = f"year(o.order_date) = {year}", f"Count only orders placed in {year}."
    elif "signup_date" in sql or ("FROM customers" in sql and "orders" not in sql):
        condition, said = (
            f"year(signup_date) = {year}",
            f"Count only customers who signed up in {year}.",
        )
    else:
        return None
    return replace(
        draft,
        question=_ask(draft.question, said),
        gold_sql=_where(sql, condition),
        distractor_sql=_where(draft.distractor_sql, condition),
    )


def filter_hop(draft: Draft, rng: random.Random) -> Draft | None:
    sql = draft.gold_sql
    if draft.kind not in _POPULATION_KINDS or "customers" in sql or "orders" not in sql:
        return None
    city = rng.choice(CITIES)
    said = f"Consider only orders by customers who live in {city}."

    def hop(query: str) -> str:
        if _ORDERS_ALIASED.search(query):
            joined = query.replace(
                " WHERE ", " JOIN customers c ON c.customer_id = o.customer_id WHERE ", 1
            )
            return _where(joined, f"c.city = '{city}'")
        joined = query.replace(
            "FROM orders WHERE", "FROM orders JOIN customers USING (customer_id) WHERE", 1
        )
        return _where(joined, f"city = '{city}'") if joined != query else query

    gold = hop(sql)
    if gold == sql:
        return None
    return replace(
        draft,
        question=_ask(draft.question, said),
        gold_sql=gold,
        distractor_sql=hop(draft.distractor_sql),
    )


def null_trap(draft: Draft, rng: random.Random) -> Draft | None:
    sql = draft.gold_sql
    if draft.kind not in _POPULATION_KINDS or "segment" in sql or "customers" not in sql:
        return None
    column = "c.segment" if _CUSTOMERS_ALIASED.search(sql) else "segment"
    segment = rng.choice(SEGMENTS)
    said = (
        f"Leave out customers in the {segment} segment; customers with no segment recorded stay in."
    )
    return replace(
        draft,
        question=_ask(draft.question, said),
        gold_sql=_where(sql, f"{column} IS DISTINCT FROM '{segment}'"),
        distractor_sql=_where(sql, f"{column} <> '{segment}'"),
    )


_UNRECORDED = {
    "customers": "Count only customers who opted in to the newsletter.",
    "orders": "Consider only orders paid by gift card.",
    "order_items": "Consider only orders paid by gift card.",
}


def not_in_data(draft: Draft, rng: random.Random) -> Draft | None:
    said = _UNRECORDED.get(draft.table)
    if draft.kind == "absent" or said is None:
        return None
    return replace(
        draft,
        template="not_in_data",
        question=_ask(draft.question, said),
        distractor_sql=draft.gold_sql,  # the parent's answer, the restriction ignored
        kind="absent",
        distractor_kind=draft.kind,
        tie_sql="",
    )


def clarify(draft: Draft, rng: random.Random) -> Draft | None:
    return ambiguous_period(draft)


Operator = Callable[[Draft, random.Random], Draft | None]
OPERATORS: dict[str, Operator] = {
    "date_window": date_window,
    "filter_hop": filter_hop,
    "null_trap": null_trap,
    "not_in_data": not_in_data,
    "clarify": clarify,
}


FALLBACK = "not_in_data"


def harder_analysis_variants(
    task: Task, tables: TableSet, round_: int, operators: Sequence[str]
) -> list[Task]:
    """The task one step harder by each operator that applies, in `operators`' order."""
    assert task.analysis is not None
    parent = draft_of(task)
    variants = []
    for name in operators:
        draft = OPERATORS[name](parent, random.Random(f"{task.id}:{name}:{round_}"))
        if draft is None:
            continue
        variant = analysis_task(draft, tables, task.analysis.dataset, f"{task.id}-{name}{round_}")
        if variant is None:
            continue
        variant.lineage = Lineage(
            source_workflow=task.lineage.source_workflow,
            branch=draft.template,
            round=round_,
            parent_id=task.id,
            operator=f"harder:{name}",
        )
        variants.append(variant)
    return variants


def evolve_analysis(
    tasks: Sequence[Task], round_: int = 1, operators: Sequence[str] = tuple(OPERATORS)
) -> tuple[list[Task], dict[str, int]]:
    """At most one harder, gated variant per analysis task; and the gate's rejection
    counts. Operators are tried in `operators`' order, rotated by the parent's position,
    `not_in_data` last."""
    unknown = set(operators) - set(OPERATORS)
    if unknown or not operators:
        raise ValueError(f"operators must be among {', '.join(OPERATORS)}; got {sorted(unknown)}")
    # "not in the data" fits every question, so it comes last: the fallback where no
    # other operator applies, instead of a fifth of the batch.
    turns = [n for n in operators if n != FALLBACK] or list(operators)
    last = [FALLBACK] if FALLBACK in operators and turns != [FALLBACK] else []
    candidates: dict[str, list[Task]] = {}
    for i, task in enumerate(tasks):
        assert task.analysis is not None
        order = [*turns[i % len(turns) :], *turns[: i % len(turns)], *last]
        tables = load_tables(task.analysis.dataset)
        candidates[task.id] = harder_analysis_variants(task, tables, round_, order)
    report = gate_industrial([v for vs in candidates.values() for v in vs])
    kept_ids = {t.id for t in report.kept}
    by_id = {t.id: t for t in report.kept}
    kept = []
    for variants in candidates.values():
        first = next((v for v in variants if v.id in kept_ids), None)
        if first is not None:
            kept.append(by_id[first.id])
    return kept, counts_by_reason(report.rejected)
