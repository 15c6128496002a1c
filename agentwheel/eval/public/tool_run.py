"""Run an official tool's command, keeping all it prints in a log and passing each line on.

Progress bars (tqdm, rich) redraw with carriage returns, so output is split on both `\\r`
and `\\n`: the caller sees every redraw as a line and can show the latest one.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

_LINE_BREAK = re.compile(r"[\r\n]+")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STOP_GRACE_S = 10.0


def strip_ansi(text: str) -> str:
    """`text` without terminal colour and cursor codes."""
    return _ANSI.sub("", text)


class ToolRunError(RuntimeError):
    """The tool exited with an error."""


def run_tool(
    command: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] = lambda _: None,
    stdin_text: str | None = None,
    cwd: Path | None = None,
) -> None:
    """Run `command` (environment: ours plus `env`), append its output to `log_path` and
    hand each non-empty line, without colour codes, to `on_line`. Raises `ToolRunError`
    with the last lines when it exits non-zero."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        try:
            process = subprocess.Popen(
                list(command),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
            )
        except OSError as exc:
            raise ToolRunError(f"could not start {command[0]}: {exc}") from None
        if stdin_text is not None and process.stdin is not None:
            process.stdin.write(stdin_text.encode())
            process.stdin.close()
        try:
            last = _pass_lines(process, log, on_line)
            code = process.wait()
        finally:
            # An interrupted run (Ctrl-C) must not leave the tool running on its own.
            stop_tool(process)
    if code != 0:
        raise ToolRunError(
            f"{Path(command[0]).name} {command[1] if len(command) > 1 else ''} exited with "
            f"{code}: {' | '.join(last)} (full output: {log_path})"
        )


def stop_tool(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """Terminate, then kill: bfcl-eval catches SIGTERM and waits for its request in flight
    (a 20-hour client timeout) before it exits."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _pass_lines(
    process: subprocess.Popen[bytes], log: TextIO, on_line: Callable[[str], None]
) -> list[str]:
    """Copy the tool's output to `log` and its lines to `on_line`; the last five lines."""
    assert process.stdout is not None
    last: list[str] = []
    pending = ""
    fd = process.stdout.fileno()
    # os.read returns what is there (a progress redraw) instead of waiting for a full buffer.
    for chunk in iter(lambda: os.read(fd, 65536), b""):
        text = chunk.decode("utf-8", errors="replace")
        log.write(text)
        log.flush()
        *lines, pending = _LINE_BREAK.split(pending + text)
        for line in lines:
            clean = strip_ansi(line).strip()
            if clean:
                last = [*last[-4:], clean]
                on_line(clean)
    tail = strip_ansi(pending).strip()
    if tail:
        last = [*last[-4:], tail]
        on_line(tail)
    return last
