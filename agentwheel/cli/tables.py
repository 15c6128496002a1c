"""Small rich tables the commands print."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table


def counts_table(title: str, rows: Mapping[str, Any]) -> Table:
    """A two-column table: what, and how many."""
    table = Table(title=title)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in rows.items():
        table.add_row(name, str(value))
    return table
