"""Reading back JSONL files a killed run left behind."""

from __future__ import annotations

from pydantic import BaseModel

from agentwheel.core.jsonl import cut_torn_tail, read_models


class Row(BaseModel):
    n: int


def test_a_torn_last_line_is_cut_off_and_clean_files_are_left_alone(tmp_path):
    path = tmp_path / "rows.jsonl"
    assert cut_torn_tail(path) == 0  # no file
    path.write_text('{"n": 1}\n{"n": 2}\n{"n": 3')
    assert cut_torn_tail(path) == len('{"n": 3')
    assert path.read_text() == '{"n": 1}\n{"n": 2}\n'
    assert cut_torn_tail(path) == 0
    assert read_models(path, Row) == ([Row(n=1), Row(n=2)], 0)


def test_a_file_without_any_newline_is_emptied(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"n": 1' + " " * 200_000)  # longer than one read-back block
    assert cut_torn_tail(path) == 200_007
    assert path.read_bytes() == b""


def test_the_last_newline_is_found_across_read_back_blocks(tmp_path):
    path = tmp_path / "rows.jsonl"
    head = '{"n": 1}\n'
    path.write_text(head + "x" * 150_000)
    assert cut_torn_tail(path) == 150_000
    assert path.read_text() == head
