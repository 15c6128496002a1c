"""The README documents: short, its config example loads, and every file it links exists
(so each result row points at a JSON that is there)."""

from __future__ import annotations

import re
from pathlib import Path

import agentwheel as aw

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_the_readme_is_at_most_350_lines():
    assert len(README.read_text().splitlines()) <= 350


def test_the_readme_config_example_loads(tmp_path):
    text = README.read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    path = tmp_path / "mine.yaml"
    path.write_text(block)
    config = aw.load_config(path, ["grpo.lr=2e-6"])
    assert config.name == "mine" and len(config.rounds) == 2 and config.grpo.lr == 2e-6


def test_every_local_link_of_the_readme_exists():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert any(link.startswith("bench/results/") and link.endswith(".json") for link in local)
    missing = [link for link in local if not (ROOT / link).exists()]
    assert missing == []
