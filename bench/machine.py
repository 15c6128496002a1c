"""Machine facts written next to every benchmark result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentwheel.core.machine import cpu_model, machine_facts

__all__ = ["cpu_model", "machine_facts", "write_result"]


def write_result(name: str, result: dict[str, Any], out_dir: Path | None = None) -> Path:
    out_dir = out_dir or Path(__file__).parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine_facts(), **result}, indent=2))
    return path
