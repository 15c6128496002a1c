import re

import pytest
from pydantic import ValidationError

from agentwheel.core.task import SqlToolImpl, Task, ToolSpec, call_key
from tests.envs.sample_tasks import make_task


def test_tool_takes_at_most_three_scalar_parameters():
    params = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(4)}}
    with pytest.raises(ValidationError, match="at most 3"):
        ToolSpec(name="t", description="", parameters=params, kind="query")
    nested = {"type": "object", "properties": {"p": {"type": "object"}}}
    with pytest.raises(ValidationError, match="scalar type"):
        ToolSpec(name="t", description="", parameters=nested, kind="query")


def test_path_calling_unknown_tool_is_rejected():
    data = make_task("happy").model_dump()
    data["normal_path"][0]["tool"] = "delete_everything"
    with pytest.raises(ValidationError, match="unknown tool 'delete_everything'"):
        Task.model_validate(data)


def test_sqlite_world_must_implement_every_tool():
    data = make_task("happy").model_dump()
    del data["sqlite"]["tools"]["cancel_order"]
    with pytest.raises(ValidationError, match="cancel_order"):
        Task.model_validate(data)


def test_call_key_ignores_argument_order_and_integral_floats():
    assert call_key("t", {"a": 1, "b": "x"}) == call_key("t", {"b": "x", "a": 1.0})
    assert call_key("t", {"a": 1}) != call_key("t", {"a": 2})


def test_hack_action_keys_exclude_normal_path_and_queries():
    task = make_task("refuse")
    assert task.hack_action_keys() == {call_key("cancel_order", {"order_id": "O-2"})}
    assert make_task("happy").hack_action_keys() == set()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["O-9", "C-1", "pending"]], "rows[3] has 3 values for 4 columns"),
        ([{"order_id": "O-9", "colour": "red"}], "rows[3] has unknown columns ['colour']"),
        ([["O-9", "C-1", {"nested": 1}, 1.0]], "rows[3] has non-scalar values (dict)"),
        ([["O-9", "C-1", "pending", 2**63]], "rows[3] has an integer out of SQLite"),
    ],
)
def test_rows_that_do_not_fit_their_columns_are_rejected_at_load(rows, message):
    data = make_task("happy").model_dump()
    data["sqlite"]["tables"]["orders"]["rows"].extend(rows)
    with pytest.raises(ValidationError, match=re.escape(message)) as caught:
        Task.model_validate(data)
    assert caught.value.errors()[0]["loc"] == ("sqlite", "tables", "orders")


@pytest.mark.parametrize(
    "statement",
    [
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "  pragma writable_schema = 1",
        "DROP TABLE orders",
        "CREATE TABLE t (x)",
        "COMMIT",
        "VACUUM INTO '/tmp/x.db'",
        "SAVEPOINT s",
    ],
)
def test_task_sql_may_only_read_or_write_rows(statement):
    data = make_task("happy").model_dump()
    data["sqlite"]["tools"]["get_order"]["sql"] = [
        "SELECT * FROM orders WHERE order_id = :order_id",
        statement,
    ]
    with pytest.raises(ValidationError, match=r"statement 1 .* is not allowed") as caught:
        Task.model_validate(data)
    assert caught.value.errors()[0]["loc"] == ("sqlite", "tools", "get_order", "sql")


def test_statements_tools_use_are_allowed():
    for statement in [
        "select 1",
        "INSERT INTO t VALUES (:a)",
        "update t set a = 1",
        "DELETE FROM t",
        "REPLACE INTO t VALUES (1)",
        "WITH x AS (SELECT 1) SELECT * FROM x",
    ]:
        assert SqlToolImpl(sql=[statement]).sql == [statement]
