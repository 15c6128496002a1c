"""How a config file is read: `extends:` another file, and `--set key.path=value` overrides."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentwheel.core.yaml_text import load_yaml


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` → (["a", "b", "c"], value parsed as YAML)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not key.path=value")
    key, raw = text.split("=", 1)
    return key.strip().split("."), load_yaml(raw)


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set dotted keys in a raw config dict; list items by index (`rounds.0.steps=4`)."""
    for text in overrides:
        path, value = parse_override(text)
        node: Any = raw
        for part in path[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(path[-1])] = value
        else:
            node[path[-1]] = value
    return raw


EXTENDS = "extends"


def resolve_extends(
    raw: dict[str, Any], path: Path, read: Any = None, chain: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """A config with `extends: other.yaml` (a path relative to its own file) is that file's
    config with this one's keys merged over it, mapping by mapping (a list replaces the
    list it overrides). `read(path)` reads a file as a mapping (default: plain YAML).
    A config that extends itself, directly or through others, raises `ValueError`."""
    parent_name = raw.pop(EXTENDS, None)
    if parent_name is None:
        return raw
    reader = read or (lambda p: load_yaml(Path(p).read_text()) or {})
    chain = (*chain, Path(path).resolve())
    parent_path = (path.parent / str(parent_name)).resolve()
    if parent_path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, parent_path))
        raise ValueError(f"configs extend each other in a cycle: {cycle}")
    if not parent_path.exists():
        raise FileNotFoundError(
            2, f"{path}: extends a config that does not exist", str(parent_path)
        )
    parent = resolve_extends(reader(parent_path), parent_path, reader, chain)
    return _merged(parent, raw)


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged
