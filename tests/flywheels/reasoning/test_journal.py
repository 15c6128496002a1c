from pydantic import BaseModel

from agentwheel.flywheels.reasoning.journal import Journal


class Item(BaseModel):
    key: str
    value: int


def test_journal_reloads_records_and_survives_a_torn_line(tmp_path):
    path = tmp_path / "items.jsonl"
    journal = Journal(path, Item, key=lambda r: r.key)
    journal.append([Item(key="a", value=1), Item(key="b", value=2)])
    journal.append([Item(key="a", value=99)])  # already journaled: not rewritten
    with open(path, "a") as handle:
        handle.write('{"key": "c", "val')  # killed mid-write
    again = Journal(path, Item, key=lambda r: r.key)
    assert again.torn_lines == 1 and again.resumed == 2 and again.get("a").value == 1
    again.append([Item(key="c", value=3)])
    final = Journal(path, Item, key=lambda r: r.key)
    assert sorted(final.records) == ["a", "b", "c"] and final.torn_lines == 1
