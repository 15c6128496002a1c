"""Where two nested settings dicts differ, as dotted keys: what an error about a run made
with other settings names."""

from __future__ import annotations

from typing import Any


def changed_keys(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, sorted; nested dicts are compared key by key."""
    changed = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed.extend(changed_keys(old, new, f"{prefix}{key}."))
        elif old != new:
            changed.append(f"{prefix}{key}")
    return changed
