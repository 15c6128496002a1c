"""The schedule config named by `--config` (a path or a bundled name) with its `--set`
overrides, checked so that every mistake becomes one `UserError` line that names the key,
where it came from (the file or which `--set`) and what would be accepted."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from agentwheel.cli.errors import UserError
from agentwheel.core.resources import find_config
from agentwheel.core.yaml_text import load_yaml
from agentwheel.settings.config_file import apply_overrides, parse_override, resolve_extends
from agentwheel.settings.rl_round import RLRound
from agentwheel.settings.rounds import ROUND_SETTINGS
from agentwheel.settings.schedule import ScheduleConfig, without_legacy_temperature
from agentwheel.settings.trainer import KnobOutOfRange
from agentwheel.study.config import StudyConfig

SET_EXAMPLE = "--set grpo.lr=2e-6"
STUDY_KEY = "study"  # the section only a study config has (agentwheel/study/config.py)


def read_checked_config(
    name_or_path: str | Path, overrides: Sequence[str], schema: type[BaseModel]
) -> tuple[Path, dict[str, Any]]:
    """The config file named by `--config` (a path or a bundled name) as a mapping with its
    `--set` overrides applied; a missing file, a file that is not YAML, a malformed or
    misplaced `--set` and a key `schema` does not have are each a `UserError`."""
    path, raw = read_resolved(name_or_path)
    if schema is ScheduleConfig and STUDY_KEY in raw:
        raise UserError(
            f"{path} is a learning-study config, not a training schedule: run "
            f"`agentwheel study --config {name_or_path}`"
        )
    for text in overrides:
        raw = apply_one_override(raw, text)
    try:
        raw = without_legacy_temperature(raw)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None
    unknown = first_unknown_key(raw, schema, [])
    if unknown is not None:
        key, known = unknown
        raise UserError(unknown_key_message(key, known, origin(key, path, overrides)))
    return path, raw


def read_resolved(name_or_path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The file `--config` names (a path or a bundled name), read with its `extends:`."""
    try:
        path = find_config(name_or_path)
    except FileNotFoundError as exc:
        raise UserError(f"{exc}: pass a YAML file or one of the bundled names") from None
    try:
        return path, resolve_extends(read_mapping(path), path, read_mapping)
    except ValueError as exc:  # a cycle of `extends:`
        raise UserError(str(exc)) from None


def bad_value(exc: ValidationError, path: Path, overrides: Sequence[str]) -> UserError:
    """The first validation error as one line: the key, where it came from, the problem."""
    first = exc.errors()[0]
    key, problem = located_problem(first)
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    where = ".".join(key) or "the config"
    return UserError(f"bad config value {where} ({origin(key, path, overrides)}): {problem}{more}")


Schema = TypeVar("Schema", bound=BaseModel)


def validated_config(
    name_or_path: str | Path, overrides: Sequence[str], schema: type[Schema]
) -> tuple[Path, Schema]:
    """The config named by `--config` with its `--set` overrides, validated by `schema`
    (a `ScheduleConfig` or a study's); every mistake is one `UserError` line. Imports no
    torch and no implementation: the settings are data."""
    path, raw = read_checked_config(name_or_path, overrides, schema)
    try:
        return path, schema.model_validate(raw)
    except ValidationError as exc:
        raise bad_value(exc, path, overrides) from None


def checked_config(
    name_or_path: str | Path, overrides: Sequence[str] = ()
) -> tuple[Path, ScheduleConfig]:
    """The config validated by its own schema: a learning study's when it has a `study:`
    section, else a training schedule's (what `agentwheel check-config` checks, with the
    names it refers to)."""
    _, raw = read_resolved(name_or_path)
    schema = StudyConfig if STUDY_KEY in raw else ScheduleConfig
    return validated_config(name_or_path, overrides, schema)


def load_schedule_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> ScheduleConfig:
    """`validated_config`, then the names and the device it refers to."""
    path, config = validated_config(name_or_path, overrides, ScheduleConfig)
    check_names(config, path, overrides)
    check_device(config, path, overrides)
    return config


# Pydantic's range errors, as the bound they broke.
BOUND_TEXT = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}
BOUND_KEY = {
    "greater_than_equal": "ge",
    "greater_than": "gt",
    "less_than_equal": "le",
    "less_than": "lt",
}


def located_problem(error: Any) -> tuple[list[str], str]:
    """The key a validation error is about and what is wrong with it: a value out of range
    reads `must be >= 1, got -4`; a trainer knob (a dataclass checked in its own
    `__post_init__`) is located at the knob, not at its dataclass."""
    key = [str(part) for part in error["loc"]]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, KnobOutOfRange):
        return [*key, cause.field], str(cause)
    kind = error["type"]
    if kind in BOUND_TEXT:
        bound = error["ctx"][BOUND_KEY[kind]]
        return key, f"must be {BOUND_TEXT[kind]} {bound}, got {error['input']}"
    if kind == "value_error" and cause is not None:
        return key, str(cause)
    if kind == "finite_number":
        return key, f"must be a finite number, got {error['input']}"
    return key, error["msg"]


def check_device(config: ScheduleConfig, path: Path, overrides: Sequence[str]) -> None:
    """`model.device` names a device this machine has (torch would fail later, or a
    device index could be ignored)."""
    device = config.model.device
    if device == "cpu":
        return  # every machine has one; asking torch would load it
    here = available_devices()
    if device in here or (device == "cuda" and "cuda:0" in here):
        return
    where = origin(["model", "device"], path, overrides)
    raise UserError(
        f"model.device {device!r} ({where}) does not exist: devices here: {', '.join(here)}"
    )


def available_devices() -> list[str]:
    import torch

    cuda = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = ["mps"] if torch.backends.mps.is_available() else []
    return ["cpu", *cuda, *mps]


def check_names(config: ScheduleConfig, path: Path, overrides: Sequence[str]) -> None:
    """The model spec and workflow ids name things that exist (the run would otherwise
    find out only after loading a model)."""
    # Here, not at the top: checking a config's schema needs neither the model factories
    # nor the workflow library (the flywheel's reader, which knows which files are valid).
    from agentwheel.flywheels.agentic.workflow_loader import load_workflows
    from agentwheel.train.model_factory import MODEL_FACTORIES

    spec = config.model.spec
    if spec not in MODEL_FACTORIES and not spec.startswith("hf:"):
        known = ", ".join([*MODEL_FACTORIES, "hf:default", "hf:<path or hub name>"])
        where = origin(["model", "spec"], path, overrides)
        raise UserError(f"unknown model spec {spec!r} in model.spec ({where}): use {known}")
    data = config.data
    try:
        workflows, _ = load_workflows(data.workflows_dir)
    except FileNotFoundError as exc:
        where = origin(["data", "workflows_dir"], path, overrides)
        raise UserError(f"data.workflows_dir ({where}): {exc}") from None
    known_ids = sorted(w.id for w in workflows)
    for field in ("held_out_workflows", "train_workflows"):
        unknown = sorted(set(getattr(data, field) or []) - set(known_ids))
        if unknown:
            where = origin(["data", field], path, overrides)
            raise UserError(
                f"unknown workflow ids {unknown} in data.{field} ({where}); "
                f"known: {', '.join(known_ids)}"
            )


def read_mapping(path: Path) -> dict[str, Any]:
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise UserError(f"config {path} is not valid YAML: {problem}{line}") from None
    except UnicodeDecodeError:
        raise UserError(f"config {path} is not a text (YAML) file") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(
            f"config {path} holds a YAML {type(raw).__name__}, not a mapping of config keys "
            "(name: ..., data: ..., rounds: ...)"
        )
    return raw


def apply_one_override(raw: dict[str, Any], text: str) -> dict[str, Any]:
    try:
        key, _ = parse_override(text)
    except yaml.YAMLError:
        raise UserError(f"--set {text!r}: the value is not valid YAML") from None
    except ValueError:
        raise UserError(f"--set {text!r} is not key.path=value, e.g. {SET_EXAMPLE}") from None
    if not all(key):
        raise UserError(f"--set {text!r} has an empty key part, e.g. {SET_EXAMPLE}")
    try:
        return apply_overrides(copy.deepcopy(raw), [text])
    except (IndexError, ValueError, TypeError, AttributeError):
        # The path runs into a value that is not a mapping, or indexes a list badly.
        raise UserError(
            f"--set {text!r}: {'.'.join(key)} does not name a key of the config "
            "(list items by index, e.g. --set rounds.0.steps=4)"
        ) from None


def origin(key: Sequence[str], path: Path, overrides: Sequence[str]) -> str:
    """Which `--set` wrote the key (the last one on its path), else the file."""
    for text in reversed(overrides if key else ()):
        set_key = parse_override(text)[0]
        if _on_one_path(set_key, list(key)):
            return f"from --set {text}"
    return f"in {path}"


def _on_one_path(a: list[str], b: list[str]) -> bool:
    """Whether one key path runs through the other. Validation paths may hold extra parts
    (`rounds.0.agentic.steps` names the union member), so the shorter one only has to
    appear in order within the longer one."""
    short, long = sorted((a, b), key=len)
    if not short or short[0] != long[0]:
        return False
    rest = iter(long)
    return all(part in rest for part in short)


def unknown_key_message(key: list[str], known: list[str], where: str) -> str:
    parent = ".".join(key[:-1])
    close = difflib.get_close_matches(key[-1], known, n=1)
    hint = f"did you mean {'.'.join([*key[:-1], close[0]])}? " if close else ""
    return (
        f"unknown config key {'.'.join(key)} ({where}); {hint}"
        f"keys of {parent or 'the config'}: {', '.join(known)}"
    )


def first_unknown_key(
    value: Any, schema: Any, key: list[str]
) -> tuple[list[str], list[str]] | None:
    """The first key in `value` that `schema` (pydantic models, dataclasses, lists and
    unions of them) does not have, with the keys it does have; None when all are known."""
    schema = _unwrap(schema)
    if isinstance(value, list) and typing.get_origin(schema) is list:
        (item_schema,) = typing.get_args(schema) or (Any,)
        for index, item in enumerate(value):
            found = first_unknown_key(item, item_schema, [*key, str(index)])
            if found:
                return found
        return None
    if not isinstance(value, dict):
        return None
    fields = _fields(_union_member(schema, value))
    if fields is None:
        return None
    for name, item in value.items():
        if name not in fields:
            return [*key, str(name)], sorted(fields)
        found = first_unknown_key(item, fields[name], [*key, str(name)])
        if found:
            return found
    return None


def _unwrap(schema: Any) -> Any:
    """`Annotated[X, ...]` and `X | None` → X."""
    while True:
        origin_type = typing.get_origin(schema)
        if origin_type is typing.Annotated:
            schema = typing.get_args(schema)[0]
            continue
        if origin_type in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(schema) if a is not type(None)]
            if len(members) == 1:
                schema = members[0]
                continue
        return schema


def _union_member(schema: Any, value: dict[str, Any]) -> Any:
    """The settings model of the round kind `value` names (rounds are validated by their
    kind's model), or the member of a union of models tagged by `kind` that it names."""
    if isinstance(schema, type) and issubclass(schema, RLRound):
        return ROUND_SETTINGS.get(str(value.get("kind")), schema)
    if typing.get_origin(schema) not in (typing.Union, types.UnionType):
        return schema
    for member in typing.get_args(schema):
        fields = getattr(member, "model_fields", {})
        if "kind" in fields and fields["kind"].default == value.get("kind"):
            return member
    return None


def _fields(schema: Any) -> dict[str, Any] | None:
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return {name: field.annotation for name, field in schema.model_fields.items()}
    if isinstance(schema, type) and dataclasses.is_dataclass(schema):
        hints = typing.get_type_hints(schema)
        return {field.name: hints[field.name] for field in dataclasses.fields(schema)}
    return None
