"""Machine facts name the CPU instructions that half-precision speed depends on."""

from __future__ import annotations

from pathlib import Path

from agentwheel.core import machine


def test_numeric_flags_are_read_from_cpuinfo(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx2 fma f16c\n"
    )
    real_path = Path

    def fake_path(name: str = "") -> Path:
        return cpuinfo if name == "/proc/cpuinfo" else real_path(name)

    monkeypatch.setattr(machine, "Path", fake_path)
    assert machine.cpu_numeric_flags() == ["avx2", "fma"]
    facts = machine.machine_facts()
    assert facts["cpu"] == "AMD EPYC" and facts["cpu_flags"] == ["avx2", "fma"]
