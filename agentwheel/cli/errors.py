"""How the command line reports a user's mistake: one line that names the thing and the
fix, exit code 1, no traceback. Click keeps exit code 2 for its own usage errors (an
unknown option, a missing argument, a value of the wrong type or not among the choices).

Commands raise `fail(...)` where they know the context; `UserErrorGroup` catches the
mistakes that surface deeper down (a missing file, an unknown model spec) for every
command. Set AGENTWHEEL_TRACEBACK=1 to see the traceback instead.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from agentwheel.core.external_training import ExternalTrainingFailed
from agentwheel.specs import SpecError

console = Console(stderr=True)


class UserError(Exception):
    """A mistake the user can fix; the message is the whole line shown to them."""


def fail(message: str) -> typer.Exit:
    """Print `error: <message>` on one line and return the exit to raise (code 1)."""
    one_line = " ".join(message.split())  # messages from libraries may span lines
    console.print(f"[bold red]error:[/] {escape(one_line)}", soft_wrap=True)
    return typer.Exit(1)


def require_dir(path: Path, option: str = "--out") -> None:
    """An output directory may be missing (it is created) but must not be a file."""
    if path.exists() and not path.is_dir():
        raise fail(f"{option} {path} is a file: pass a directory (it is created if missing)")


_NO_SPACE = ("No space left on device", "Disk quota exceeded")


def disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, is the disk (or the user's
    quota) running out of space. Libraries that write through their own I/O (safetensors)
    raise their own type and say so only in the message."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(words in str(current) for words in _NO_SPACE):
            return True
        context = None if current.__suppress_context__ else current.__context__
        current = current.__cause__ or context
    return False


def describe(exc: BaseException) -> str | None:
    """The one-line message for a user's mistake or the machine's state; None for anything
    else (a bug)."""
    if isinstance(exc, UserError | SpecError | ExternalTrainingFailed):
        return str(exc)
    if disk_full(exc):
        where = f" writing {exc.filename}" if getattr(exc, "filename", None) else ""  # type: ignore[attr-defined]
        return f"no space left on the device{where}: free some space, then rerun"
    if isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        if exc.filename is None:
            return str(exc)
        return f"{exc.strerror or 'cannot open'}: {exc.filename}"
    if isinstance(exc, yaml.YAMLError):
        return f"not valid YAML: {' '.join(str(exc).split())}"
    return None


class UserErrorGroup(TyperGroup):
    """A typer group that turns a user's mistake raised by any of its commands into `fail`."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            message = describe(exc)
            if message is None or os.environ.get("AGENTWHEEL_TRACEBACK"):
                raise
            raise fail(message) from None


def in_range(
    min: float | None = None, max: float | None = None, min_open: bool = False
) -> Callable[[Any], Any]:
    """An option callback that refuses a number outside [min, max] (min excluded when
    `min_open`) as a usage error naming the value and the range; typer's own `min=` and
    `max=` name only the bound. None (an option left unset) passes; nan and inf do not."""
    if max is None:
        text = f"x>{min}" if min_open else f"x>={min}"
    else:
        low = "" if min is None else (f"{min}<" if min_open else f"{min}<=")
        text = f"{low}x<={max}"

    def check(value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a finite number.")
        below = min is not None and (value <= min if min_open else value < min)
        if below or (max is not None and value > max):
            raise typer.BadParameter(f"{value} is not in the range {text}.")
        return value

    return check
