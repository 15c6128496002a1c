"""A resumed run must be the run it resumes: the settings it recorded, compared with now."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def changed_settings(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """`name: <recorded> on disk, <now> now` for every setting of `now` that differs from
    the one recorded (a setting missing on disk differs from any value)."""
    return [
        f"{name}: {recorded.get(name)!r} on disk, {value!r} now"
        for name, value in now.items()
        if recorded.get(name) != value
    ]
