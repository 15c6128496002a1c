"""`pip install .` works anywhere: the wheel carries the bundled data, and the installed
package runs from an unrelated directory without the source tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # builds and installs a wheel, then runs two commands


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def package_files(tree: Path) -> set[str]:
    return {
        p.relative_to(tree).as_posix()
        for p in (tree / "agentwheel").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A wheel built from a copy of the source, so the build leaves nothing in the checkout
    and no stale build/ directory can add files that are gone."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(
        ROOT / "agentwheel", source / "agentwheel", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = [sys.executable, "-m", "pip"]
    run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", "dist", "./source"],
        tmp,
        env,
    )
    (built,) = (tmp / "dist").glob("agentwheel-*.whl")
    return built, package_files(source)


def test_the_wheel_holds_every_file_of_the_package(wheel):
    built, source_files = wheel
    with zipfile.ZipFile(built) as archive:
        names = {n for n in archive.namelist() if n.startswith("agentwheel/")}
    assert names == source_files
    for pattern in (
        "agentwheel/data/workflows/*.yaml",
        "agentwheel/data/fixtures/*.jsonl",
        "agentwheel/data/reasoning/*.jsonl",
        "agentwheel/data/reasoning/*.yaml",
        "agentwheel/configs/*.yaml",
        "agentwheel/llm/templates/*.jinja",
        "agentwheel/flywheels/*/prompts/*.txt",
    ):
        assert any(Path(n).match(pattern) for n in names), pattern
    assert "agentwheel/configs/tiny.yaml" in names and "agentwheel/configs/demo.yaml" in names


def test_the_installed_wheel_runs_from_an_unrelated_directory(wheel, tmp_path):
    built, _ = wheel
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(built),
        ],
        tmp_path,
        env,
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    probe = run(
        [
            sys.executable,
            "-c",
            "import agentwheel; from agentwheel.core.resources import bundled_data; "
            "print(agentwheel.__file__); print(bundled_data('workflows')); "
            "print(agentwheel.__version__)",
        ],
        elsewhere,
        env,
    ).stdout.split()
    assert all(Path(p).is_relative_to(target) for p in probe[:2]), probe
    assert probe[2] == "0.1.0"

    cli = [sys.executable, str(target / "bin" / "agentwheel")]
    assert run([*cli, "--version"], elsewhere, env).stdout.strip() == "agentwheel 0.1.0"
    run([*cli, "eval", "--tasks", "fixtures", "--policy", "oracle", "--out", "run"], elsewhere, env)
    summary = json.loads((elsewhere / "run" / "summary.json").read_text())
    assert summary["n_tasks"] == 42 and summary["pass_hat_k"]["1"] == 1.0

    run([*cli, "synth", "agentic", "--out", "x", "--tasks-per-workflow", "4"], elsewhere, env)
    manifest = json.loads((elsewhere / "x" / "manifest.json").read_text())
    written = (elsewhere / "x" / "tasks.jsonl").read_text().splitlines()
    assert manifest["tasks"] == len(written) == 56
    assert len({json.loads(line)["domain"] for line in written}) >= 5
