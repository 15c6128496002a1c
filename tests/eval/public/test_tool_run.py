"""Running an official tool: every line logged and passed on, failures with their last lines."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from agentwheel.eval.public.tool_run import ToolRunError, run_tool, stop_tool


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_progress_redraws_and_lines_reach_the_caller_and_the_log(tmp_path):
    seen: list[str] = []
    code = (
        "import sys; sys.stdout.write('step 1/3\\rstep 2/3\\rstep 3/3\\n'); "
        "print('\\x1b[32mdone\\x1b[0m'); print('', flush=True)"
    )
    run_tool(python(code), tmp_path / "tool.log", on_line=seen.append)
    assert seen == ["step 1/3", "step 2/3", "step 3/3", "done"]
    log = (tmp_path / "tool.log").read_text()
    assert log.startswith(f"$ {sys.executable} -c")
    assert "step 3/3" in log


def test_environment_and_stdin_reach_the_tool(tmp_path):
    seen: list[str] = []
    code = "import os, sys; print(os.environ['BENCH_VAR'], sys.stdin.read().split())"
    run_tool(
        python(code), tmp_path / "tool.log", env={"BENCH_VAR": "set"}, on_line=seen.append,
        stdin_text="y\nn\n",
    )  # fmt: skip
    assert seen == ["set ['y', 'n']"]


def test_a_failing_tool_raises_with_its_last_lines(tmp_path):
    code = "import sys; print('loading'); print('KeyError: bad model'); sys.exit(3)"
    with pytest.raises(ToolRunError) as caught:
        run_tool(python(code), tmp_path / "tool.log")
    message = str(caught.value)
    assert "exited with 3" in message
    assert "KeyError: bad model" in message
    assert str(tmp_path / "tool.log") in message


def test_a_missing_executable_is_a_tool_error(tmp_path):
    with pytest.raises(ToolRunError, match="could not start"):
        run_tool([str(tmp_path / "no-such-tool"), "run"], tmp_path / "tool.log")


def test_a_tool_that_ignores_terminate_is_killed():
    code = "import signal, time; signal.signal(signal.SIGTERM, lambda *a: None); print('up', flush=True); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"up\n"
    stop_tool(process, grace_s=0.5)
    assert process.returncode == -signal.SIGKILL
