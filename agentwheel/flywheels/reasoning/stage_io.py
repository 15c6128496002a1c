"""What the reasoning flywheel's stages share on disk: file names, atomic writes of the
final files, and the `config.json` that makes a rerun a resume (or refuses it when the
settings changed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from agentwheel.core.atomic import write_lines_atomic, write_text_atomic
from agentwheel.core.changed_keys import changed_keys
from agentwheel.core.rejection import Rejection

CONFIG = "config.json"


class StageConfigMismatch(ValueError):
    """An output directory that holds a run made with other settings."""


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def package_versions() -> dict[str, str]:
    out = {}
    for package in ("agentwheel", "reasoning-gym", "math-verify"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_rejections(rejections: Sequence[Rejection], path: Path) -> None:
    write_lines_atomic(path, (r.model_dump_json() for r in rejections))


def claim_out_dir(out_dir: Path, run: dict[str, Any]) -> bool:
    """Record the run's settings in out_dir; True when it resumes an identical run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CONFIG
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before != run:
            changed = changed_keys(before, run)
            raise StageConfigMismatch(
                f"{out_dir} holds a run with other settings ({', '.join(changed)}); "
                "rerun with the same settings to resume, or pick a new output directory"
            )
        return True
    write_json(path, run)
    return False
