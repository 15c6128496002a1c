"""Analysis questions over the generated shop tables, each with a gold query and a trap.

Every template pairs the gold SQL with a *distractor* query: the plausible mistake (a
filter left out, NULL discounts that silently drop rows, a date window open on one side,
averaging item lines instead of orders). The gold value is what the gold query returns
on the task's own tables; the `hack_path` runs the distractor and submits its value.

Templates: `status_count_month` (filter + date), `net_revenue` (3-table join, NULLs),
`top_city` (group-by, argmax), `missing_segment` (NULLs), `top_products` (ordered list),
`cities_for_product` (set, quarter dates), `avg_order_value` (two-level aggregate),
`orders_after_signup` (date arithmetic), `not_in_data` (a column no table has),
`clarify_period` (ambiguous: a month or quarter asked without its year; the agent must
ask the user which year, and the trap is assuming another one).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from agentwheel.core.industrial import NOT_IN_DATA, AnalysisWorld, AnswerKind, AnswerSpec
from agentwheel.core.task import Evaluation, Lineage, Task, ToolCallStep, UserSide
from agentwheel.envs.analysis import ANALYSIS_TOOLS, query_rows
from agentwheel.envs.calculator import format_number
from agentwheel.envs.shop_data import CATEGORIES, CITIES, SEGMENTS
from agentwheel.envs.tables import TableSet
from agentwheel.envs.tools import is_tool_error

DOMAIN = "analysis"
INSTRUCTION = (
    "You answer questions about the shop's data. Inspect the tables with list_tables and"
    " describe_table, compute with run_sql (DuckDB SQL) or run_python, and base the answer"
    " on a result you computed. Missing values are NULL. When you have the answer, call"
    " submit_answer once with only the answer: a number, a name, or items separated by"
    " commas. If the tables do not hold what is asked, submit 'not in the data'."
)
TEMPLATES = (
    "status_count_month",
    "net_revenue",
    "top_city",
    "missing_segment",
    "top_products",
    "cities_for_product",
    "avg_order_value",
    "orders_after_signup",
    "not_in_data",
    "clarify_period",
)
YEARS = (2022, 2023, 2024)
"""The years the generated orders and signups span (questions ask about one of them)."""
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_JOIN = "order_items i JOIN orders o USING (order_id) JOIN products p USING (product_id)"


@dataclass(frozen=True)
class Draft:
    template: str
    question: str
    gold_sql: str
    distractor_sql: str
    kind: AnswerKind
    table: str  # the table the careful agent describes first
    tolerance: float = 0.0
    tie_sql: str = ""  # true when a ranking ties, so the question has no single answer
    # What the user knows and says only when asked (an ambiguous request).
    asks: dict[str, str] = field(default_factory=dict)
    # How the distractor's result is read (default: as the answer, a number for `absent`).
    distractor_kind: AnswerKind | None = None


def _status_count_month(rng: random.Random, _: TableSet) -> Draft:
    status = rng.choice(("completed", "cancelled", "returned", "pending"))
    year, month = rng.choice(YEARS), rng.randint(1, 12)
    when = f"strftime(order_date, '%Y-%m') = '{year}-{month:02d}'"
    return Draft(
        "status_count_month",
        f"How many orders placed in {_MONTHS[month - 1]} {year} have the status {status}?",
        f"SELECT COUNT(*) FROM orders WHERE status = '{status}' AND {when}",
        f"SELECT COUNT(*) FROM orders WHERE {when}",
        "number",
        "orders",
    )


def _net_revenue(rng: random.Random, _: TableSet) -> Draft:
    category, year, quarter = (
        rng.choice(CATEGORIES),
        rng.choice(YEARS),
        rng.randint(0, 4),
    )
    period, when = (
        (f"Q{quarter} {year}", f" AND quarter(o.order_date) = {quarter}")
        if quarter
        else (str(year), "")
    )
    where = f"o.status = 'completed' AND p.category = '{category}' AND year(o.order_date) = {year}{when}"
    return Draft(
        "net_revenue",
        f"What was the net revenue from completed orders of {category} products in {period}:"
        " quantity times unit price, less the item's discount where it has one? Round to"
        " 2 decimals.",
        f"SELECT ROUND(SUM(i.quantity * p.unit_price * (1 - COALESCE(i.discount, 0))), 2) FROM {_JOIN} WHERE {where}",
        f"SELECT ROUND(SUM(i.quantity * p.unit_price * (1 - i.discount)), 2) FROM {_JOIN} WHERE {where}",
        "number",
        "order_items",
        0.01,
    )


def _top_city(rng: random.Random, _: TableSet) -> Draft:
    segment, year = rng.choice(SEGMENTS), rng.choice((0, *YEARS))
    signed = f" AND year(signup_date) = {year}" if year else ""
    among = f" who signed up in {year}" if year else ""
    ranked = "GROUP BY city ORDER BY COUNT(*) DESC, city LIMIT 1"
    return Draft(
        "top_city",
        f"Which city has the most customers in the {segment} segment{among}?",
        f"SELECT city FROM customers WHERE segment = '{segment}'{signed} {ranked}",
        f"SELECT city FROM customers WHERE TRUE{signed} {ranked}",
        "text",
        "customers",
        tie_sql=(
            f"WITH c AS (SELECT COUNT(*) AS n FROM customers WHERE segment = '{segment}'{signed}"
            " GROUP BY city) SELECT COUNT(*) > 1 FROM c WHERE n = (SELECT MAX(n) FROM c)"
        ),
    )


def _missing_segment(rng: random.Random, _: TableSet) -> Draft:
    city, year = rng.choice(CITIES), rng.choice((0, *YEARS))
    signed = f" AND year(signup_date) = {year}" if year else ""
    among = f" who signed up in {year}" if year else ""
    return Draft(
        "missing_segment",
        f"How many customers in {city}{among} have no segment recorded?",
        f"SELECT COUNT(*) FROM customers WHERE city = '{city}'{signed} AND segment IS NULL",
        f"SELECT COUNT(*) FROM customers WHERE city = '{city}'{signed} AND segment = ''",
        "number",
        "customers",
    )


def _top_products(rng: random.Random, _: TableSet) -> Draft:
    category, year = rng.choice(CATEGORIES), rng.choice((0, *YEARS))
    where = f"o.status = 'completed' AND p.category = '{category}'"
    where += f" AND year(o.order_date) = {year}" if year else ""
    during = f" in {year}" if year else ""
    return Draft(
        "top_products",
        f"List the three {category} products with the most units sold in completed orders"
        f"{during}, most first.",
        f"SELECT p.name FROM {_JOIN} WHERE {where} GROUP BY p.name ORDER BY SUM(i.quantity) DESC, p.name LIMIT 3",
        f"SELECT p.name FROM {_JOIN} WHERE {where} GROUP BY p.name ORDER BY COUNT(*) DESC, p.name LIMIT 3",
        "list",
        "order_items",
        tie_sql=(
            f"WITH s AS (SELECT SUM(i.quantity) AS n FROM {_JOIN} WHERE {where} GROUP BY p.name"
            " ORDER BY n DESC LIMIT 4) SELECT COUNT(DISTINCT n) < 4 FROM s"
        ),
    )


def _cities_for_product(rng: random.Random, tables: TableSet) -> Draft:
    product = rng.choice(
        tables.connection.cursor().execute("SELECT name FROM products").fetchall()
    )[0]
    year, quarter = rng.choice(YEARS), rng.randint(1, 4)
    join = f"{_JOIN} JOIN customers c ON c.customer_id = o.customer_id"
    when = f"p.name = '{product}' AND year(o.order_date) = {year} AND quarter(o.order_date) = {quarter}"
    return Draft(
        "cities_for_product",
        f"In which cities do the customers live who had a completed order of {product} in"
        f" Q{quarter} {year}?",
        f"SELECT DISTINCT c.city FROM {join} WHERE o.status = 'completed' AND {when} ORDER BY 1",
        f"SELECT DISTINCT c.city FROM {join} WHERE {when} ORDER BY 1",
        "set",
        "orders",
    )


def _avg_order_value(rng: random.Random, _: TableSet) -> Draft:
    city, year = rng.choice(CITIES), rng.choice((0, *YEARS))
    base = f"FROM {_JOIN} JOIN customers c ON c.customer_id = o.customer_id WHERE o.status = 'completed' AND c.city = '{city}'"
    base += f" AND year(o.order_date) = {year}" if year else ""
    during = f" placed in {year}" if year else ""
    return Draft(
        "avg_order_value",
        f"What is the average value of completed orders{during} by customers in {city}? An"
        " order's value is the sum of quantity times unit price over its items (no"
        " discounts). Round to 2 decimals.",
        f"SELECT ROUND(AVG(v), 2) FROM (SELECT SUM(i.quantity * p.unit_price) AS v {base} GROUP BY o.order_id)",
        f"SELECT ROUND(AVG(i.quantity * p.unit_price), 2) {base}",
        "number",
        "orders",
        0.01,
    )


def _orders_after_signup(rng: random.Random, _: TableSet) -> Draft:
    days = rng.randint(3, 120)
    join = "orders o JOIN customers c USING (customer_id)"
    gap = "date_diff('day', c.signup_date, o.order_date)"
    return Draft(
        "orders_after_signup",
        f"How many orders were placed within {days} days after the customer's signup date"
        f" (on the signup day itself up to {days} days later)?",
        f"SELECT COUNT(*) FROM {join} WHERE {gap} BETWEEN 0 AND {days}",
        f"SELECT COUNT(*) FROM {join} WHERE {gap} <= {days}",
        "number",
        "customers",
    )


_ABSENT_FACTS = (
    "shipping cost",
    "tax amount",
    "delivery date",
    "coupon code",
    "sales representative",
)


def _not_in_data(rng: random.Random, _: TableSet) -> Draft:
    order, fact = rng.randint(1, 2500), rng.choice(_ABSENT_FACTS)
    return Draft(
        "not_in_data",
        f"What was the {fact} of order {order}?",
        f"SELECT * FROM orders WHERE order_id = {order}",
        f"SELECT SUM(i.quantity * p.unit_price) FROM {_JOIN} WHERE o.order_id = {order}",
        "absent",
        "orders",
    )


YEAR_FACT = "reporting_year"
_YEAR_ALIASES = ["year", "which year", "period", "time period"]
_DATED = re.compile(rf"\b({'|'.join(_MONTHS)}|Q[1-4]) (20\d\d)\b")


def ambiguous_period(draft: Draft) -> Draft | None:
    """The draft with its month's or quarter's year left out of the question: the user
    says it when asked. The distractor assumes another year. None when the question
    names no month or quarter with a year."""
    match = _DATED.search(draft.question)
    if match is None or draft.asks:
        return None
    year = int(match.group(2))
    other = year + 1 if year + 1 in YEARS else year - 1
    return Draft(
        "clarify_period",
        draft.question[: match.start()] + match.group(1) + draft.question[match.end() :],
        draft.gold_sql,
        draft.gold_sql.replace(str(year), str(other)),
        draft.kind,
        draft.table,
        draft.tolerance,
        draft.tie_sql,
        asks={YEAR_FACT: str(year)},
    )


def _clarify_period(rng: random.Random, tables: TableSet) -> Draft:
    while True:
        base = rng.choice((_status_count_month, _net_revenue, _cities_for_product))
        draft = ambiguous_period(base(rng, tables))
        if draft is not None:
            return draft


BUILDERS: dict[str, Callable[[random.Random, TableSet], Draft]] = {
    "status_count_month": _status_count_month,
    "net_revenue": _net_revenue,
    "top_city": _top_city,
    "missing_segment": _missing_segment,
    "top_products": _top_products,
    "cities_for_product": _cities_for_product,
    "avg_order_value": _avg_order_value,
    "orders_after_signup": _orders_after_signup,
    "not_in_data": _not_in_data,
    "clarify_period": _clarify_period,
}


def result_value(
    tables: TableSet, sql: str, kind: AnswerKind
) -> float | str | list[float | str] | None:
    """What a query answers under `kind`: its first cell, or its first column; None when
    it fails or finds nothing."""
    output = query_rows(tables.connection.cursor(), sql)
    if is_tool_error(output) or not output["rows"]:
        return None
    if kind in ("set", "list"):
        return [row[0] for row in output["rows"]]
    cell = output["rows"][0][0]
    if kind == "absent":
        return NOT_IN_DATA
    return cell if kind == "text" or cell is None else float(cell)


def spoken(value: float | str | list[float | str]) -> str:
    """A value as the careful agent submits it."""
    if isinstance(value, list):
        return ", ".join(spoken(v) for v in value)
    if isinstance(value, float):
        return str(format_number(value))
    return str(value)


def analysis_task(draft: Draft, tables: TableSet, dataset: str, task_id: str) -> Task | None:
    """The task of a draft, or None when its gold query answers nothing or its ranking ties."""
    gold = result_value(tables, draft.gold_sql, draft.kind)
    if gold is None or (draft.tie_sql and result_value(tables, draft.tie_sql, "text") is True):
        return None
    wrong_kind = draft.distractor_kind or ("number" if draft.kind == "absent" else draft.kind)
    wrong = result_value(tables, draft.distractor_sql, wrong_kind)
    step = ToolCallStep
    normal = [
        step(tool="list_tables"),
        step(tool="describe_table", arguments={"table": draft.table}),
        step(tool="run_sql", arguments={"query": draft.gold_sql}),
        step(tool="submit_answer", arguments={"answer": spoken(gold)}),
    ]
    hack = [step(tool="run_sql", arguments={"query": draft.distractor_sql})]
    hack.append(
        step(
            tool="submit_answer", arguments={"answer": spoken(wrong if wrong is not None else 0.0)}
        )
    )
    return Task(
        id=task_id,
        domain=DOMAIN,
        branch_kind="happy",
        instruction=INSTRUCTION,
        tools=ANALYSIS_TOOLS,
        user=UserSide(
            request=draft.question,
            known_facts=draft.asks,
            aliases={name: _YEAR_ALIASES for name in draft.asks},
        ),
        normal_path=normal,
        hack_path=hack,
        evaluation=Evaluation(
            answer=AnswerSpec(kind=draft.kind, value=gold, tolerance=draft.tolerance),
            description=f"{draft.template}: {spoken(gold)}",
            required_signals=["clarification"] if draft.asks else [],
            must_ask=list(draft.asks),
        ),
        analysis=AnalysisWorld(dataset=dataset, gold_sql=draft.gold_sql),
        lineage=Lineage(source_workflow="analysis-shop", branch=draft.template),
    )


def draft_analysis_tasks(
    tables: TableSet, dataset: str, count: int, seed: int, templates: tuple[str, ...] = TEMPLATES
) -> list[Task]:
    """Up to `count` distinct candidate tasks cycling through `templates` (a draft whose
    gold query answers nothing, or whose ranking ties, is skipped)."""
    rng = random.Random(seed)
    tasks: list[Task] = []
    asked: set[str] = set()
    for i in range(count * 4):  # repeated questions and drafts that answer nothing are skipped
        if len(tasks) == count:
            break
        template = templates[i % len(templates)]
        draft = BUILDERS[template](rng, tables)
        if draft.question in asked:
            continue
        asked.add(draft.question)
        task = analysis_task(draft, tables, dataset, f"analysis-{template}-{seed}-{i:05d}")
        if task is not None:
            tasks.append(task)
    return tasks
