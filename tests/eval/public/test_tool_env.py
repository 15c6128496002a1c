"""The benchmark tools' own virtualenvs: reused when ready, clear errors when they cannot be made."""

from __future__ import annotations

import json
import sys

import pytest

from agentwheel.eval.public.tool_env import (
    MARKER_FILE,
    ToolEnv,
    ToolEnvError,
    _run_step,
    ensure_tool_env,
)


def ready_env(tmp_path, requirements=("tool==1.0",)) -> ToolEnv:
    """A directory that looks like a finished install: the command and the marker."""
    env = ToolEnv(path=tmp_path / "venv", requirements=requirements, command="tool")
    env.bin_dir.mkdir(parents=True)
    env.executable.write_text("#!/bin/sh\n")
    marker = {"requirements": list(requirements), "command": "tool"}
    (env.path / MARKER_FILE).write_text(json.dumps(marker))
    return env


def test_a_ready_env_is_reused_without_creating_anything(tmp_path):
    env = ready_env(tmp_path)
    # A base interpreter that does not exist proves nothing is created or installed.
    assert ensure_tool_env(env, base_python="/nonexistent/python") == env.executable


def test_a_changed_pin_is_not_ready(tmp_path):
    env = ready_env(tmp_path, requirements=("tool==1.0",))
    newer = ToolEnv(path=env.path, requirements=("tool==2.0",), command="tool")
    assert env.is_ready()
    assert not newer.is_ready()


def test_venv_creation_failure_names_the_directory(tmp_path):
    env = ToolEnv(path=tmp_path / "venv", requirements=("tool==1.0",), command="tool")
    with pytest.raises(ToolEnvError, match=r"could not create a virtualenv in .*venv"):
        ensure_tool_env(env, base_python=str(tmp_path / "no-such-python"))


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "venv").write_text("")
    env = ToolEnv(path=tmp_path / "venv", requirements=("tool==1.0",), command="tool")
    with pytest.raises(ToolEnvError, match="is a file"):
        ensure_tool_env(env)


def test_a_failed_step_reports_pips_error_lines_not_its_warnings():
    script = (
        "import sys; print('WARNING: Location ignored'); "
        "print('ERROR: No matching distribution found for tool==9'); sys.exit(1)"
    )
    with pytest.raises(ToolEnvError) as caught:
        _run_step([sys.executable, "-c", script], "pip could not install tool==9")
    message = str(caught.value)
    assert "No matching distribution found for tool==9" in message
    assert "WARNING" not in message
    assert "exit 1" in message
