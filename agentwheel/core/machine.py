"""Facts about the machine a measurement ran on, written next to every result (benchmarks,
the learning study) so that numbers from two machines are never compared unknowingly."""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any


def cpuinfo_value(field: str) -> str | None:
    """The first `field` line's value in /proc/cpuinfo (None where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return cpuinfo_value("model name") or platform.processor() or "unknown"


# The CPU instructions that decide whether half precision is fast here (see
# agentwheel.llm.half_precision): without the AVX-512 / AMX ones, bf16 is emulated.
NUMERIC_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16")


def cpu_numeric_flags() -> list[str]:
    """Which of `NUMERIC_CPU_FLAGS` the CPU has (empty where /proc/cpuinfo is not there)."""
    flags = set((cpuinfo_value("flags") or "").split())
    return [f for f in NUMERIC_CPU_FLAGS if f in flags]


def machine_facts() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in ("agentwheel", "torch", "transformers", "trl"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_numeric_flags(),
        "python": sys.version.split()[0],
        "versions": versions,
    }
