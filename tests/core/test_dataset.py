import json

from agentwheel.core.dataset import load_tasks, write_tasks
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
