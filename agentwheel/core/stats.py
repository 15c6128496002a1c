"""Small statistics shared by reports and trainers."""

from __future__ import annotations

from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean; 0.0 for no values (an empty slice of a report reads as 0)."""
    return sum(values) / len(values) if values else 0.0


def mean_or_none(values: Sequence[float]) -> float | None:
    """The arithmetic mean, or None for no values (where 'no data' must not read as 0)."""
    return sum(values) / len(values) if values else None
