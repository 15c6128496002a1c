"""Seed problems: local JSONL/parquet files in common layouts, reasoning-gym generators,
and the bundled mix (our hand-written word problems plus small generated ones).

Layouts read from files (one record per line or row):
- our own `Problem` records (`id`, `question`, `answer`, `source`, `generator`, `lineage`);
- question/answer, GSM8K style: the answer may carry a rationale ending in `#### 42`;
- problem/solution, MATH style: the answer is the last `\\boxed{}` of the solution
  (an explicit `answer` field wins when there is one).

A bad record becomes a `LoadError` naming file, line (row for parquet) and field; the
rest of the file still loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentwheel.core.atomic import write_lines_atomic
from agentwheel.core.dataset import LoadError
from agentwheel.core.resources import bundled_data
from agentwheel.core.yaml_text import load_yaml
from agentwheel.flywheels.reasoning.answer_format import last_boxed
from agentwheel.flywheels.reasoning.generators import GeneratorError, render
from agentwheel.flywheels.reasoning.problem import GeneratorRef, Problem, derive_seed

BUNDLED_DIR = bundled_data("reasoning")
BUNDLED_PLAN = BUNDLED_DIR / "bundled.yaml"
SEED_FILE_SUFFIXES = (".jsonl", ".parquet")
_QUESTION_KEYS = ("question", "problem")
_ID_KEYS = ("id", "unique_id")
_PROBLEM_FIELDS = {"generator", "lineage", "meta"}


class FileSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    """A JSONL/parquet file or a directory of them; relative paths are relative to the plan."""
    limit: int | None = Field(default=None, ge=1)


class GeneratorSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    generator: str
    count: int = Field(ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


class SeedPlan(BaseModel):
    """Where seeds come from (a YAML file; `bundled` names data/reasoning/bundled.yaml)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    sources: list[FileSource | GeneratorSource]


class SeedSet(BaseModel):
    problems: list[Problem]
    errors: list[LoadError]
    sources: list[str]


def _error(file: str, line: int, field: str, message: str) -> LoadError:
    return LoadError(file=file, line=line, field=field, message=message)


def _gold_from_text(text: str) -> str | None:
    """The final answer inside a rationale: after the last `####`, else the last box."""
    if "####" in text:
        tail = text.rsplit("####", 1)[1].strip()
        return tail.replace(",", "") if tail.replace(",", "").lstrip("-").isdigit() else tail
    boxed = last_boxed(text)
    return boxed.strip() if boxed is not None else None


def _answer_of(record: dict[str, Any]) -> tuple[str | None, str, str]:
    """(answer, field it came from, complaint when there is none)."""
    if "answer" in record and record["answer"] is not None:
        raw = record["answer"]
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            return None, "answer", f"must be a string or a number, got {type(raw).__name__}"
        text = str(raw).strip()
        if not text:
            return None, "answer", "must not be empty"
        if "####" in text or "\\boxed" in text:
            gold = _gold_from_text(text)
            if not gold:
                return None, "answer", "the rationale has nothing after '####' or in \\boxed{}"
            return gold, "answer", ""
        return text, "answer", ""
    if isinstance(record.get("solution"), str):
        gold = _gold_from_text(record["solution"])
        if not gold:
            return None, "solution", "no \\boxed{} (or '####') final answer in the solution"
        return gold, "solution", ""
    return None, "answer", "missing: need 'answer' (or a 'solution' with a \\boxed{} answer)"


def parse_seed_record(
    record: Any, file: str, line: int, default_source: str
) -> Problem | LoadError:
    """One record in any supported layout → a problem, or an error naming the field."""
    if not isinstance(record, dict):
        return _error(file, line, "", f"expected an object, got {type(record).__name__}")
    qkey = next((k for k in _QUESTION_KEYS if k in record), None)
    if qkey is None:
        return _error(file, line, "question", "missing: need 'question' or 'problem'")
    if not isinstance(record[qkey], str) or not record[qkey].strip():
        return _error(file, line, qkey, "must be a non-empty string")
    answer, afield, complaint = _answer_of(record)
    if answer is None:
        return _error(file, line, afield, complaint)
    id_key = next((k for k in _ID_KEYS if record.get(k) not in (None, "")), None)
    data: dict[str, Any] = {
        "id": str(record[id_key]) if id_key else f"{Path(file).stem}-{line}",
        "question": record[qkey],
        "answer": answer,
        "source": str(record.get("source") or default_source),
    }
    data.update({k: record[k] for k in _PROBLEM_FIELDS if k in record})
    extras = {
        k: str(v)
        for k, v in record.items()
        if k not in data
        and k not in (*_QUESTION_KEYS, *_ID_KEYS, "answer", "solution")
        and isinstance(v, (str, int, float))
        and len(str(v)) <= 200
    }
    if extras and "meta" not in record:
        data["meta"] = extras
    try:
        return Problem.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        if field == "question":
            field = qkey
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return _error(file, line, field, first["msg"] + more)


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line or row number, parsed record or a LoadError for unreadable JSON)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from enumerate(pq.read_table(path).to_pylist(), start=1)
        return
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, _error(str(path), number, "", f"invalid JSON: {exc.msg}")


def load_seed_file(path: Path, limit: int | None = None) -> SeedSet:
    problems: list[Problem] = []
    errors: list[LoadError] = []
    for number, record in _records(path):
        if limit is not None and len(problems) >= limit:
            break
        result = (
            record
            if isinstance(record, LoadError)
            else parse_seed_record(record, str(path), number, path.stem)
        )
        (errors if isinstance(result, LoadError) else problems).append(result)  # type: ignore[arg-type]
    return SeedSet(problems=problems, errors=errors, sources=[str(path)])


def generate_seeds(
    name: str, count: int, params: dict[str, Any] | None = None, seed: int = 0
) -> list[Problem]:
    """`count` items of a reasoning-gym generator as procedural problems.

    Raises `GeneratorError` when reasoning-gym rejects the name or parameters."""
    ref_seed = derive_seed(seed, "generator", name)
    problems = []
    for index in range(count):
        ref = GeneratorRef(
            name=name, params=dict(params or {}), seed=ref_seed, size=count, index=index
        )
        rendered = render(ref)
        problems.append(
            Problem(
                id=f"{name}-{ref_seed:08x}-{index}",
                question=rendered.question,
                answer=rendered.answer,
                source="reasoning_gym",
                generator=ref,
            )
        )
    return problems


def _files_in(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in SEED_FILE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no .jsonl or .parquet seed files in {path}")
        return files
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"no seed file or directory at {str(path)!r}")


def load_plan(path: Path, seed: int | None = None) -> SeedSet:
    """Every source of a seed plan, in order. A generator reasoning-gym rejects becomes a
    load error on the plan's source entry, like a bad line in a file."""
    try:
        plan = SeedPlan.model_validate(load_yaml(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path}: {loc}: {first['msg']}") from None
    base_seed = plan.seed if seed is None else seed
    out = SeedSet(problems=[], errors=[], sources=[str(path)])
    for number, source in enumerate(plan.sources, start=1):
        if isinstance(source, FileSource):
            target = Path(source.file)
            target = target if target.is_absolute() else path.parent / target
            for file in _files_in(target):
                loaded = load_seed_file(file, source.limit)
                out.problems.extend(loaded.problems)
                out.errors.extend(loaded.errors)
                out.sources.extend(loaded.sources)
            continue
        try:
            out.problems.extend(
                generate_seeds(source.generator, source.count, source.params, base_seed + number)
            )
        except GeneratorError as exc:
            out.errors.append(
                _error(str(path), number, f"sources.{number - 1}.generator", str(exc))
            )
    return out


def load_seeds(spec: str | Path, seed: int | None = None) -> SeedSet:
    """Seeds from a spec: `bundled`, `gym:<generator>[:<count>]`, a seed plan (`.yaml`),
    a JSONL/parquet file, or a directory of them."""
    text = str(spec)
    if text == "bundled":
        return load_plan(BUNDLED_PLAN, seed)
    if text.startswith("gym:"):
        name, _, count = text.removeprefix("gym:").partition(":")
        try:
            problems = generate_seeds(name, int(count or 20), seed=seed or 0)
        except (GeneratorError, ValueError) as exc:
            raise ValueError(f"bad generator spec {text!r}: {exc}") from None
        return SeedSet(problems=problems, errors=[], sources=[text])
    path = Path(spec)
    if path.suffix in (".yaml", ".yml"):
        return load_plan(path, seed)
    out = SeedSet(problems=[], errors=[], sources=[])
    for file in _files_in(path):
        loaded = load_seed_file(file)
        out.problems.extend(loaded.problems)
        out.errors.extend(loaded.errors)
        out.sources.extend(loaded.sources)
    return out


def write_problems(problems: Iterable[Problem], path: Path) -> int:
    """Problems as JSONL, atomically (temp file, then rename)."""
    return write_lines_atomic(path, (problem.model_dump_json() for problem in problems))
