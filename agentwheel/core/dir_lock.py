"""One writer per run directory: an advisory lock (`flock`) held while a stage writes
there, so a second process pointed at the same directory stops at once instead of
appending a second copy of every record. The lock goes with the process, a kill included."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".lock"


class DirectoryBusy(RuntimeError):
    """Another process holds the directory's lock."""


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold `directory`'s lock for the block (the directory is created if missing); raise
    `DirectoryBusy`, naming the holder's pid, when another process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise DirectoryBusy(
                f"{directory} is in use by another run (pid {holder}): wait for it to end, "
                "or use another directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
