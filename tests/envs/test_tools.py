import sqlite3

import pytest

from agentwheel.core.task import SqliteWorld, SqlTable, SqlToolImpl, ToolSpec
from agentwheel.envs.tools import (
    MockTools,
    SqliteTools,
    build_database,
    database_hash,
    make_backend,
    replay,
    run_sql_tool,
)
from tests.envs.sample_tasks import TOOLS, WORLD, make_task

GET, CANCEL, TRANSFER = TOOLS


def test_sqlite_queries_are_computed_and_actions_change_the_hash():
    tools = SqliteTools(WORLD)
    before = tools.state_hash()
    assert tools.call(GET, {"order_id": "O-2"})["status"] == "shipped"
    assert tools.state_hash() == before
    assert tools.call(CANCEL, {"order_id": "O-1"}) == {"order_id": "O-1", "status": "cancelled"}
    assert tools.state_hash() != before
    assert tools.ledger == ['cancel_order:{"order_id":"O-1"}']


def test_sqlite_arguments_are_bound_not_formatted():
    tools = SqliteTools(WORLD)
    before = tools.state_hash()
    out = tools.call(CANCEL, {"order_id": "x' OR '1'='1"})
    assert out["error"] == "not_found"
    assert tools.state_hash() == before and tools.ledger == []


def test_failed_write_rolls_back_and_is_not_in_the_ledger():
    tools = SqliteTools(WORLD)
    before = tools.state_hash()
    assert tools.call(CANCEL, {"order_id": "O-404"})["error"] == "not_found"
    assert tools.state_hash() == before and tools.ledger == []


def test_each_episode_gets_its_own_database():
    first, second = SqliteTools(WORLD), SqliteTools(WORLD)
    first.call(CANCEL, {"order_id": "O-1"})
    assert second.call(GET, {"order_id": "O-1"})["status"] == "pending"


def test_mock_answers_from_expected_outputs_and_types_off_script_calls():
    task = make_task("happy")
    tools = MockTools(task)
    assert tools.call(GET, {"order_id": "O-1"})["total"] == 40.0
    off = tools.call(GET, {"order_id": "O-3"})
    assert off["error"] == "no_result"


def test_mock_ledger_state_matches_normal_path_replay():
    task = make_task("happy")
    expected, _ = replay(task, "normal", "mock")
    tools = MockTools(task)
    tools.call(CANCEL, {"order_id": "O-1"})
    assert tools.state_hash() == expected
    refused = make_task("refuse")  # its expected outputs include the hack path's cancel
    compliant, _ = replay(refused, "normal", "mock")
    tools = MockTools(refused)
    tools.call(CANCEL, {"order_id": "O-2"})
    assert tools.state_hash() != compliant


@pytest.mark.parametrize("backend", ["mock", "sqlite"])
def test_an_identical_action_runs_once_on_both_back_ends(backend):
    task = make_task("transfer")  # inserts a row: SQLite would apply it twice
    expected, _ = replay(task, "normal", backend)
    tools = make_backend(task, backend)
    assert tools.call(TRANSFER, {"customer_id": "C-1"}) == {"status": "ok"}
    again = tools.call(TRANSFER, {"customer_id": "C-1"})
    assert again["error"] == "duplicate_action"
    assert tools.state_hash() == expected and len(tools.ledger) == 1
    first = tools.call(GET, {"order_id": "O-1"})  # queries repeat freely
    assert tools.call(GET, {"order_id": "O-1"}) == first
    assert first.get("error") != "duplicate_action"


class CountingSimulator:
    def __init__(self):
        self.calls = 0

    def simulate(self, task, tool, arguments):
        self.calls += 1
        return {"simulated": self.calls}


def test_simulated_off_script_answers_are_stable_within_an_episode():
    sim = CountingSimulator()
    tools = MockTools(make_task("happy"), simulator=sim)
    first = tools.call(GET, {"order_id": "O-9"})
    again = tools.call(GET, {"order_id": "O-9"})
    assert first == again == {"simulated": 1} and sim.calls == 1


class FixedModel:
    name = "fixed"
    renderer = None

    def __init__(self, text):
        self.text = text
        self.prompts = []

    def chat(self, requests, params):
        from agentwheel.core.messages import Completion

        self.prompts.extend(r.messages[0].content for r in requests)
        return [Completion(text=self.text) for _ in requests]


def test_llm_tool_simulator_parses_json_and_sees_known_outputs():
    from agentwheel.envs.tool_simulator import LLMToolSimulator

    model = FixedModel('Sure! ```json\n{"order_id": "O-9", "status": "pending"}\n```')
    tools = MockTools(make_task("happy"), simulator=LLMToolSimulator(model))
    assert tools.call(GET, {"order_id": "O-9"}) == {"order_id": "O-9", "status": "pending"}
    assert '"total": 40.0' in model.prompts[0]  # consistent with the task's known facts
    garbage = MockTools(make_task("happy"), simulator=LLMToolSimulator(FixedModel("no idea")))
    assert garbage.call(GET, {"order_id": "O-9"})["error"] == "no_result"


def test_back_ends_agree_that_a_failed_action_changes_nothing():
    task = make_task("happy")
    for tools in (MockTools(task), SqliteTools(WORLD)):
        before = tools.state_hash()
        assert "error" in tools.call(CANCEL, {"order_id": "O-2040"})  # a typo: no such order
        assert tools.state_hash() == before and tools.ledger == []


# --- nothing a model sends raises out of a back-end -----------------------------------

ITEMS = SqliteWorld(
    tables={"items": SqlTable(columns=["item_id", "qty"], rows=[["I-1", 1], ["I-2", 5]])},
    tools={
        "get_item": SqlToolImpl(
            sql=["SELECT * FROM items WHERE item_id = :item_id"], returns="row"
        ),
        "set_qty": SqlToolImpl(
            sql=[
                "UPDATE items SET qty = :qty WHERE item_id = :item_id",
                "SELECT * FROM items WHERE item_id = :item_id",
            ],
            returns="row",
        ),
    },
)
GET_ITEM = ToolSpec(
    name="get_item",
    description="",
    parameters={"type": "object", "properties": {"item_id": {"type": "string"}}},
    kind="query",
)
SET_QTY = ToolSpec(
    name="set_qty",
    description="",
    parameters={
        "type": "object",
        "properties": {"item_id": {"type": "string"}, "qty": {"type": "integer"}},
        "required": ["item_id", "qty"],
    },
    kind="action",
)


def test_an_integer_past_sqlite_range_is_a_tool_error_and_the_database_stays_usable():
    tools = SqliteTools(ITEMS)
    before = tools.state_hash()
    out = tools.call(SET_QTY, {"item_id": "I-1", "qty": 2**63})
    assert out["error"] == "bad_arguments" and "integer range" in out["detail"]
    assert tools.state_hash() == before and tools.ledger == []
    assert tools.call(SET_QTY, {"item_id": "I-1", "qty": 3}) == {"item_id": "I-1", "qty": 3}


def test_any_driver_exception_rolls_the_transaction_back():
    db = build_database(ITEMS)
    impl = SqlToolImpl(
        sql=["UPDATE items SET qty = 0 WHERE item_id = :item_id", "SELECT :big AS big"]
    )
    out = run_sql_tool(db, impl, {"item_id": "I-1", "big": 2**64})  # OverflowError at bind
    assert out["error"] == "sql_error" and "OverflowError" in out["detail"]
    assert not db.in_transaction
    assert db.execute("SELECT qty FROM items WHERE item_id = 'I-1'").fetchone()[0] == 1
    ok = run_sql_tool(db, ITEMS.tools["get_item"], {"item_id": "I-2"})
    assert ok == {"item_id": "I-2", "qty": 5}


def test_an_integer_sent_as_a_float_is_stored_as_an_int_on_both_back_ends():
    sqlite = SqliteTools(ITEMS)
    assert sqlite.call(SET_QTY, {"item_id": "I-1", "qty": 10.0}) == {"item_id": "I-1", "qty": 10}
    as_int = SqliteTools(ITEMS)
    as_int.call(SET_QTY, {"item_id": "I-1", "qty": 10})
    assert sqlite.state_hash() == as_int.state_hash()
    assert sqlite.ledger == as_int.ledger == ['set_qty:{"item_id":"I-1","qty":10}']


@pytest.mark.parametrize(
    "statement",
    [
        "ATTACH DATABASE '{path}' AS other",
        "VACUUM INTO '{path}'",
        "PRAGMA user_version = 7",
        "SELECT * FROM sqlite_master",
        "SELECT load_extension('{path}')",
        "SELECT random() AS r",
        "CREATE TABLE sneaky (x)",
        "DROP TABLE items",
        "SAVEPOINT sp",
    ],
)
def test_task_sql_runs_under_an_authorizer_that_allows_only_its_own_tables(tmp_path, statement):
    path = tmp_path / "escaped.db"
    # built without validation, as if the load-time check had missed it
    impl = SqlToolImpl.model_construct(
        sql=[statement.format(path=path)], returns="rows", require_rows=False
    )
    db = build_database(ITEMS)
    before = database_hash(db, ITEMS)
    out = run_sql_tool(db, impl, {})
    assert out["error"] == "sql_error"
    with pytest.raises(
        sqlite3.DatabaseError, match=r"not authorized|prohibited|authorization denied"
    ):
        db.execute(statement.format(path=path))  # outside a transaction too
    assert not path.exists() and database_hash(db, ITEMS) == before
    assert run_sql_tool(db, ITEMS.tools["get_item"], {"item_id": "I-1"})["qty"] == 1


def test_the_authorizer_allows_what_task_tools_do():
    db = build_database(ITEMS)
    writes = SqlToolImpl(
        sql=[
            "INSERT INTO items VALUES (:item_id, 2)",
            "WITH low AS (SELECT item_id FROM items WHERE qty < 3) "
            "UPDATE items SET qty = qty + 1 WHERE item_id IN (SELECT item_id FROM low)",
            "DELETE FROM items WHERE item_id = 'I-2'",
            "SELECT item_id, upper(item_id) AS up, count(*) AS n FROM items GROUP BY item_id",
        ]
    )
    rows = run_sql_tool(db, writes, {"item_id": "I-3"})
    assert rows == [
        {"item_id": "I-1", "up": "I-1", "n": 1},
        {"item_id": "I-3", "up": "I-3", "n": 1},
    ]
    with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
        db.execute("ATTACH DATABASE ':memory:' AS other")


def test_a_bare_count_of_a_task_table_is_allowed():
    """SQLite reads a bare COUNT(*) without naming the database; it was denied."""
    db = build_database(ITEMS)
    count = SqlToolImpl(sql=["SELECT COUNT(*) AS n FROM items"], returns="row")
    assert run_sql_tool(db, count, {}) == {"n": 2}
    with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
        db.execute("SELECT COUNT(*) FROM sqlite_master")


def test_a_cross_join_past_the_step_budget_is_a_sql_error_and_the_database_stays_usable():
    # An 8-way cross join of a 12-row table: 4 * 10^8 rows, minutes of CPU unbounded.
    rows = [[f"I-{i}", i] for i in range(12)]
    world = ITEMS.model_copy(
        update={"tables": {"items": SqlTable(columns=["item_id", "qty"], rows=rows)}}
    )
    db = build_database(world)
    tables = ", ".join(f"items AS t{i}" for i in range(8))
    join = SqlToolImpl(sql=[f"SELECT count(*) AS n FROM {tables}"], returns="row")
    out = run_sql_tool(db, join, {})
    assert out["error"] == "sql_error" and "budget" in out["detail"]
    assert not db.in_transaction
    assert run_sql_tool(db, ITEMS.tools["get_item"], {"item_id": "I-3"}) == {
        "item_id": "I-3",
        "qty": 3,
    }
    small = SqlToolImpl(sql=["SELECT count(*) AS n FROM items AS a, items AS b"], returns="row")
    assert run_sql_tool(db, small, {}) == {"n": 144}


def test_a_result_past_the_row_cap_is_a_sql_error():
    rows = [[f"I-{i}", i] for i in range(80)]
    world = ITEMS.model_copy(
        update={"tables": {"items": SqlTable(columns=["item_id", "qty"], rows=rows)}}
    )
    db = build_database(world)
    pairs = SqlToolImpl(sql=["SELECT a.item_id, b.qty FROM items AS a, items AS b"])
    out = run_sql_tool(db, pairs, {})  # 6,400 rows
    assert out["error"] == "sql_error" and "more than 5,000 rows" in out["detail"]
    some = SqlToolImpl(sql=["SELECT a.item_id FROM items AS a, items AS b WHERE b.qty < 50"])
    assert len(run_sql_tool(db, some, {})) == 4000
