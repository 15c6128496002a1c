"""Append-only JSONL files that survive a kill: read back what finished, repair a torn tail.

A run killed mid-write leaves a last line without its newline. Readers skip lines that do
not validate and count them; writers first end such a tail with a newline, so the next
record starts on a line of its own, or cut it off, where the file must stay a clean
dataset (every line a record).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)


def read_models(path: Path, model: type[T]) -> tuple[list[T], int]:
    """The records of `path` that validate as `model`, and the number of lines that do not."""
    records: list[T] = []
    corrupt = 0
    if path.exists():
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    records.append(model.model_validate_json(line))
                except ValidationError:
                    corrupt += 1
    return records, corrupt


def end_torn_tail(path: Path) -> None:
    """Give a non-empty file whose last line was cut off its missing newline."""
    if path.exists() and path.stat().st_size:
        with open(path, "rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")


def cut_torn_tail(path: Path) -> int:
    """Truncate a last line that has no newline (a write the kill cut short); returns the
    number of bytes dropped (0 when the file ends cleanly or does not exist)."""
    if not path.exists():
        return 0
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        keep = _end_of_last_line(handle, size)
        if keep < size:
            handle.truncate(keep)
    return size - keep


def _end_of_last_line(handle: BinaryIO, size: int, block: int = 1 << 16) -> int:
    """The offset just past the last newline (0 if there is none), read back from the end
    in blocks so that a large file is not read whole."""
    end = size
    while end > 0:
        start = max(0, end - block)
        handle.seek(start)
        newline = handle.read(end - start).rfind(b"\n")
        if newline != -1:
            return start + newline + 1
        end = start
    return 0
