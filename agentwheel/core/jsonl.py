"""Append-only JSONL files that survive a kill: read back what finished, repair a torn tail.

A run killed mid-write leaves a last line without its newline. Readers skip lines that do
not validate (or are not UTF-8), count them and say where they are; writers first end
such a tail with a newline, so the next record starts on a line of its own, or cut it
off, where the file must stay a clean dataset (every line a record).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from pydantic import BaseModel, ValidationError

from agentwheel.core.rejection import Rejection

T = TypeVar("T", bound=BaseModel)
log = logging.getLogger(__name__)


def text_lines(path: Path) -> Iterator[tuple[int, str | UnicodeDecodeError]]:
    """(line number, text) for each non-blank line; a line that is not UTF-8 comes as its
    decode error, so one bad byte costs that line, not the file."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, exc
                continue
            if text.strip():
                yield number, text


def not_utf8_detail(error: UnicodeDecodeError) -> str:
    return f"not UTF-8: byte 0x{error.object[error.start]:02x} at column {error.start + 1}"


def read_jsonl(path: Path, model: type[T], stage: str = "read") -> tuple[list[T], list[Rejection]]:
    """The records of `path` that validate as `model`, and a rejection (`file:line`,
    reason `not_utf8` or `invalid_record`) for every line that does not."""
    records: list[T] = []
    rejections: list[Rejection] = []
    if not path.exists():
        return records, rejections
    for number, text in text_lines(path):
        where = f"{path}:{number}"
        if isinstance(text, UnicodeDecodeError):
            rejections.append(
                Rejection(stage=stage, item=where, reason="not_utf8", detail=not_utf8_detail(text))
            )
            continue
        try:
            records.append(model.model_validate_json(text))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            rejections.append(
                Rejection(
                    stage=stage,
                    item=where,
                    reason="invalid_record",
                    detail=first["msg"],
                    field=field,
                )
            )
    return records, rejections


def read_models(path: Path, model: type[T]) -> tuple[list[T], int]:
    """The records of `path` that validate as `model`, and the number of lines that do
    not (each logged as a warning with its file and line)."""
    records, rejections = read_jsonl(path, model)
    for rejection in rejections:
        log.warning("skipped %s", rejection)
    return records, len(rejections)


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
