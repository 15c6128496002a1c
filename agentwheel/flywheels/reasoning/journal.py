"""Append-only JSONL of finished items, so that a stage can be killed and rerun.

Each record is written as one line, flushed and fsynced as soon as its item finishes; a
rerun reads the journal back and skips the keys already there. A line torn by a kill
mid-write is skipped, counted, and the file is repaired before new lines are appended.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from agentwheel.core.jsonl import end_torn_tail, read_models

T = TypeVar("T", bound=BaseModel)


class Journal(Generic[T]):
    def __init__(self, path: Path, model: type[T], key: Callable[[T], str]):
        self.path = path
        self._model = model
        self._key = key
        records, self.torn_lines = read_models(path, model)
        self.records = {key(r): r for r in records}
        self.resumed = len(self.records)

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: str) -> T | None:
        return self.records.get(key)

    def append(self, records: Iterable[T]) -> None:
        """Write records now (flushed, fsynced); a key already journaled is not rewritten."""
        fresh = [r for r in records if self._key(r) not in self.records]
        if not fresh:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        end_torn_tail(self.path)
        with open(self.path, "a", encoding="utf-8") as handle:
            for record in fresh:
                handle.write(record.model_dump_json() + "\n")
                self.records[self._key(record)] = record
            handle.flush()
            os.fsync(handle.fileno())
