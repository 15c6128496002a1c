"""The public Python API: lazy, complete, and the README example runs as printed."""

from __future__ import annotations

import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import agentwheel

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "python_api.py"


def test_the_readme_example_runs_and_prints_pass_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "oracle: pass^1 = 1.00 on 56 tasks"
    name, rest = lines[1].split(": pass^1 = ")
    refuse_pass = float(rest.split()[0])
    # looking up, then declining, is right on some branches (refuse) and wrong on the others
    assert name == "cautious" and 0.0 < refuse_pass < 1.0


def test_the_readme_quotes_the_example_verbatim():
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    assert f"```python\n{EXAMPLE.read_text().rstrip()}\n```" in readme


def test_every_public_name_resolves_and_is_listed():
    for name in agentwheel.__all__:
        assert getattr(agentwheel, name) is not None
    assert set(agentwheel.__all__) == {"__version__", *agentwheel._API}
    assert set(agentwheel.__all__) <= set(dir(agentwheel))
    from agentwheel.eval.evaluate import run_eval

    assert agentwheel.run_eval is run_eval
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = agentwheel.nope  # type: ignore[attr-defined]


def test_importing_the_package_or_its_core_loads_nothing_heavy():
    code = (
        "import sys, agentwheel, agentwheel.core.dataset; "
        "print(sorted(m for m in sys.modules if m in ('torch', 'transformers') "
        "or m.startswith(('agentwheel.train', 'agentwheel.specs', 'agentwheel.eval'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


def test_the_version_comes_from_the_installed_metadata():
    from importlib import metadata

    assert agentwheel.__version__ == metadata.version("agentwheel")
