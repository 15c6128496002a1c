"""Loading and writing task datasets (JSONL). A bad line (invalid JSON, a field that does
not validate, a byte that is not UTF-8) is reported with file, line, field and the task
id where one can be read, and the rest of the file still loads."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from agentwheel.core.atomic import write_lines_atomic
from agentwheel.core.jsonl import not_utf8_detail, text_lines
from agentwheel.core.resources import bundled_data
from agentwheel.core.run_layout import MANIFEST_FILE, SUMMARY, TASKS_FILE
from agentwheel.core.task import Task

BUNDLED_DATA = bundled_data()


class LoadError(BaseModel):
    file: str
    line: int
    field: str
    message: str
    record_id: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        if self.record_id:
            where += f" ({self.record_id})"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class TaskSet(BaseModel):
    tasks: list[Task]
    errors: list[LoadError]
    sources: list[str]


def resolve_dataset(spec: str | Path) -> list[Path]:
    """A path to a JSONL file or a directory, or the name of a bundled dataset.

    A stage's output directory (it has `manifest.json`) is read through its manifest: its
    tasks are `tasks.jsonl`, never the other JSONL files next to it (rejections, band
    traces, LLM trees). A directory without a manifest holds tasks in `tasks.jsonl`, or
    else in every `*.jsonl` (a plain dataset directory such as the bundled fixtures).
    """
    path = Path(spec)
    if not path.exists() and isinstance(spec, str) and (BUNDLED_DATA / spec).exists():
        path = BUNDLED_DATA / spec
    if path.is_dir():
        return _task_files(path)
    if path.is_file():
        return [path]
    bundled = (
        sorted(p.name for p in BUNDLED_DATA.iterdir() if p.is_dir())
        if BUNDLED_DATA.exists()
        else []
    )
    raise FileNotFoundError(
        f"no dataset at {spec!r}; bundled datasets: {', '.join(bundled) or 'none'}"
    )


def _task_files(directory: Path) -> list[Path]:
    tasks = directory / TASKS_FILE
    if (directory / MANIFEST_FILE).is_file() or tasks.is_file():
        if not tasks.is_file():
            raise FileNotFoundError(
                f"{directory} has a {MANIFEST_FILE} but no {TASKS_FILE}: it is not a task "
                "directory (agentic stages write their tasks there)"
            )
        return [tasks]
    if (directory / SUMMARY).is_file():
        raise FileNotFoundError(
            f"{directory} is an eval run directory (episodes, not tasks): pass the tasks it "
            f"evaluated, named under 'tasks' in its {SUMMARY}"
        )
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no .jsonl task files in {directory}")
    return files


def _field_path(loc: Iterable[int | str]) -> str:
    return ".".join(str(p) for p in loc)


def _record_id(text: str) -> str:
    """The `id` of a JSON object line that failed validation, if it has a readable one."""
    try:
        payload = json.loads(text)
    except ValueError:
        return ""
    record_id = payload.get("id") if isinstance(payload, dict) else None
    return record_id if isinstance(record_id, str) else ""


def parse_task_line(text: str, file: str, line: int) -> Task | LoadError:
    try:
        return Task.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            return LoadError(
                file=file, line=line, field="", message=f"invalid JSON: {first['msg']}"
            )
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return LoadError(
            file=file,
            line=line,
            field=_field_path(first["loc"]),
            message=first["msg"] + more,
            record_id=_record_id(text),
        )


def load_tasks(spec: str | Path) -> TaskSet:
    tasks: list[Task] = []
    errors: list[LoadError] = []
    files = resolve_dataset(spec)
    seen: set[str] = set()
    for file in files:
        for number, text in text_lines(file):
            if isinstance(text, UnicodeDecodeError):
                errors.append(
                    LoadError(file=str(file), line=number, field="", message=not_utf8_detail(text))
                )
                continue
            result = parse_task_line(text, str(file), number)
            if isinstance(result, LoadError):
                errors.append(result)
            elif result.id in seen:
                errors.append(
                    LoadError(
                        file=str(file),
                        line=number,
                        field="id",
                        message=f"duplicate task id {result.id!r}",
                        record_id=result.id,
                    )
                )
            else:
                seen.add(result.id)
                tasks.append(result)
    return TaskSet(tasks=tasks, errors=errors, sources=[str(f) for f in files])


def write_tasks(tasks: Iterable[Task], path: Path) -> int:
    """Write tasks as JSONL atomically (temp file, then rename)."""
    return write_lines_atomic(path, (task.model_dump_json() for task in tasks))


def dump_jsonl_line(obj: BaseModel) -> str:
    return json.dumps(obj.model_dump(mode="json"), ensure_ascii=False) + "\n"
