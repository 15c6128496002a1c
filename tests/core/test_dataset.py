import json

from pydantic import BaseModel

from agentwheel.core.dataset import load_tasks, write_tasks
from agentwheel.core.jsonl import read_jsonl, read_models
from tests.envs.sample_tasks import ALL_KINDS, make_task


def test_bad_lines_are_reported_and_the_rest_loads(tmp_path):
    good = [make_task(k) for k in ALL_KINDS]
    path = tmp_path / "tasks.jsonl"
    write_tasks(good, path)
    lines = path.read_text().splitlines()
    missing_field = json.loads(lines[1])
    del missing_field["user"]["request"]
    wrong_kind = json.loads(lines[2])
    wrong_kind["tools"][0]["kind"] = "mutation"
    lines[1] = json.dumps(missing_field)
    lines[2] = json.dumps(wrong_kind)
    lines.insert(3, '{"id": "broken", ')
    lines.append(lines[0])  # duplicate id
    path.write_text("\n".join(lines) + "\n")

    loaded = load_tasks(path)

    assert [t.id for t in loaded.tasks] == [good[0].id, good[3].id, good[4].id]
    by_line = {e.line: e for e in loaded.errors}
    assert by_line[2].field == "user.request" and "Field required" in by_line[2].message
    assert by_line[3].field == "tools.0.kind"
    assert by_line[4].field == "" and "invalid JSON" in by_line[4].message
    assert by_line[7].field == "id" and "duplicate" in by_line[7].message
    assert all(e.file == str(path) for e in loaded.errors)


def test_write_then_load_round_trips(tmp_path):
    tasks = [make_task(k) for k in ALL_KINDS]
    write_tasks(tasks, tmp_path / "a.jsonl")
    assert load_tasks(tmp_path).tasks == tasks


def test_unknown_dataset_names_the_bundled_ones(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="no dataset at 'nope'"):
        load_tasks("nope")


def test_a_byte_that_is_not_utf8_costs_its_line_not_the_file(tmp_path):
    good = [make_task(k) for k in ALL_KINDS]
    path = tmp_path / "tasks.jsonl"
    write_tasks(good, path)
    lines = path.read_bytes().splitlines()
    lines[2] = lines[2].replace(b"Orders", b"Ord\xe9rs", 1)  # Latin-1, not UTF-8
    path.write_bytes(b"\n".join(lines) + b"\n")

    loaded = load_tasks(path)

    assert [t.id for t in loaded.tasks] == [t.id for i, t in enumerate(good) if i != 2]
    [error] = loaded.errors
    assert (error.file, error.line) == (str(path), 3)
    assert error.message.startswith("not UTF-8: byte 0xe9 at column")


def test_a_table_whose_rows_do_not_fit_is_skipped_and_named(tmp_path):
    good = [make_task(k) for k in ALL_KINDS]
    path = tmp_path / "tasks.jsonl"
    write_tasks(good, path)
    lines = path.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["sqlite"]["tables"]["orders"]["rows"].append(["O-9", "C-1"])
    lines[1] = json.dumps(broken)
    path.write_text("\n".join(lines) + "\n")

    loaded = load_tasks(path)

    assert len(loaded.tasks) == 4
    [error] = loaded.errors
    assert (error.line, error.field, error.record_id) == (2, "sqlite.tables.orders", good[1].id)
    assert "rows[3] has 2 values for 4 columns" in error.message
    assert f"tasks.jsonl:2 ({good[1].id}): sqlite.tables.orders" in str(error)


def test_a_task_file_that_attaches_a_database_is_rejected_and_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from agentwheel.cli import app

    escaped = tmp_path / "escaped.db"
    task = json.loads(make_task("happy").model_dump_json())
    task["sqlite"]["tools"]["get_order"]["sql"] = [
        f"ATTACH DATABASE '{escaped}' AS elsewhere",
        "SELECT * FROM orders WHERE order_id = :order_id",
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(task) + "\n")

    [error] = load_tasks(path).errors
    assert error.record_id == "orders-happy" and error.field == "sqlite.tools.get_order.sql"
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "orders-happy" in result.output and "not allowed" in result.output
    assert not escaped.exists()


class Record(BaseModel):
    n: int


def test_traces_skip_and_report_lines_that_are_not_utf8_or_not_records(tmp_path):
    path = tmp_path / "traces.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": "\xff"}\n{"n": 3}\n{"m": 4}\n{"n": 5')
    records, rejections = read_jsonl(path, Record)
    assert [r.n for r in records] == [1, 3]
    assert [(r.item, r.reason) for r in rejections] == [
        (f"{path}:2", "not_utf8"),
        (f"{path}:4", "invalid_record"),
        (f"{path}:5", "invalid_record"),  # the torn tail
    ]
    assert rejections[1].field == "n"
    assert read_models(path, Record) == (records, 3)
