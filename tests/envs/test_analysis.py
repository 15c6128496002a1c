import pytest

from agentwheel.core.industrial import AnalysisWorld
from agentwheel.envs.analysis import DESCRIBE_TABLE, LIST_TABLES, RUN_PYTHON, RUN_SQL, AnalysisTools
from agentwheel.envs.sandbox import SandboxLimits, bwrap_path
from agentwheel.envs.shop_data import generate_shop
from agentwheel.envs.tables import load_tables
from agentwheel.envs.tools import is_tool_error


@pytest.fixture(scope="module")
def tools():
    backend = AnalysisTools(
        AnalysisWorld(dataset="shop", gold_sql="SELECT 1"), SandboxLimits(wall_s=5)
    )
    yield backend
    backend.close()


def test_the_shop_is_deterministic_and_has_nulls():
    a, b = generate_shop(seed=2), generate_shop(seed=2)
    assert [t.rows[:50] for t in a] == [t.rows[:50] for t in b]
    customers = a[0]
    assert any(row[3] is None for row in customers.rows)
    assert generate_shop(seed=3)[2].rows != a[2].rows


def test_tables_are_listed_described_and_queried(tools):
    listed = tools.call(LIST_TABLES, {})
    assert {t["table"] for t in listed} == {"customers", "products", "orders", "order_items"}
    assert next(t["rows"] for t in listed if t["table"] == "orders") == 2500
    described = tools.call(DESCRIBE_TABLE, {"table": "orders"})
    assert {"name": "order_date", "type": "DATE"} in described["columns"]
    result = tools.call(
        RUN_SQL, {"query": "SELECT COUNT(*) AS n FROM customers WHERE segment IS NULL"}
    )
    assert result["columns"] == ["n"] and result["rows"][0][0] > 0
    big = tools.call(RUN_SQL, {"query": "SELECT * FROM orders"})
    assert len(big["rows"]) == 50 and big["truncated"]


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE orders",
        "UPDATE orders SET status = 'x'",
        "CREATE TABLE t AS SELECT 1",
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY orders TO '/tmp/stolen.csv'",
        "ATTACH '/tmp/other.db'",
        "SET threads = 8",
        "INSTALL httpfs",
        "SELECT 1; SELECT 2",
        "SELEC nonsense",
    ],
)
def test_sql_reads_the_tables_and_nothing_else(tools, sql):
    result = tools.call(RUN_SQL, {"query": sql})
    assert is_tool_error(result) and result["error"] == "sql_error"
    assert tools.call(RUN_SQL, {"query": "SELECT COUNT(*) FROM orders"})["rows"] == [[2500]]


def test_a_runaway_query_is_stopped():
    from agentwheel.envs.analysis import query_rows

    cursor = load_tables("shop").connection.cursor()
    slow = "SELECT COUNT(*) FROM range(100000000) a, range(100000000) b"
    result = query_rows(cursor, slow, seconds=0.5)
    assert is_tool_error(result) and "stopped" in result["detail"]


def test_describing_an_unknown_table_names_the_tables(tools):
    result = tools.call(DESCRIBE_TABLE, {"table": "refunds"})
    assert is_tool_error(result) and "orders" in result["detail"]


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap is not installed")
def test_python_reads_the_tables_in_the_sandbox(tools):
    code = "import csv\nprint(sum(1 for _ in csv.DictReader(open('/data/orders.csv'))))"
    assert tools.call(RUN_PYTHON, {"code": code})["stdout"].strip() == "2500"
    escape = tools.call(RUN_PYTHON, {"code": "print(open('/etc/passwd').read())"})
    assert is_tool_error(escape) and escape["error"] == "sandbox_error"


def test_a_users_folder_of_csv_is_a_dataset(tmp_path):
    (tmp_path / "sales.csv").write_text("region,amount\nnorth,10\nsouth,32\n")
    tables = load_tables(str(tmp_path))
    assert tables.tables == ("sales",)
    assert tables.connection.cursor().execute("SELECT SUM(amount) FROM sales").fetchone() == (42,)
