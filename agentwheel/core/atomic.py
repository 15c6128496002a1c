"""Writes that a kill cannot leave half done: write a sibling temporary file, then rename
it over the target (a rename within one directory is atomic on POSIX)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` when the block ends
    without an exception, removed when it raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_lines_atomic(path: Path, lines: Iterable[str]) -> int:
    """Writes each line followed by a newline; returns how many were written."""
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
            count += 1
    return count


def write_with(path: Path, writer: Callable[[Path], object]) -> Path:
    """`writer(tmp)` writes the file (e.g. a parquet writer), then it takes `path`'s place."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return path
