"""Build the bundled industrial fixtures: `search-fixtures` and `analysis-fixtures`.

Both are small synthesis runs with fixed seeds (agentwheel/flywheels/industrial/synth.py):
every template is represented, every task passed the gate (oracle passes, the blind and
distractor shortcuts fail), and expected outputs are filled from the task's own world.

    python scripts/build_industrial_fixtures.py   # rewrites the two .jsonl files
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from agentwheel.core.resources import bundled_data
from agentwheel.flywheels.industrial.synth import synth_industrial

FIXTURES = {"search": 20, "analysis": 27}
SEED = 7


def main() -> None:
    for kind, count in FIXTURES.items():
        with tempfile.TemporaryDirectory() as scratch:
            manifest = synth_industrial(Path(scratch), kind, count, seed=SEED)  # type: ignore[arg-type]
            target = bundled_data(f"{kind}-fixtures") / f"{kind}.jsonl"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text((Path(scratch) / "tasks.jsonl").read_text(encoding="utf-8"))
        print(f"{kind}: {manifest.tasks} tasks {manifest.tasks_by_template} → {target}")


if __name__ == "__main__":
    main()
