"""Build the bundled industrial fixtures: `search-fixtures` and `analysis-fixtures`.

Both are small synthesis runs with fixed seeds (agentwheel/flywheels/industrial/synth.py):
every template is represented, every task passed the gate (oracle passes, the blind and
distractor shortcuts fail; an ambiguous one also fails when the agent does not ask), and
expected outputs are filled from the task's own world. Each set is its first templates'
questions, then a few ambiguous ones (`clarify_*`), so adding a template does not change
the questions already there.

    python scripts/build_industrial_fixtures.py   # rewrites the two .jsonl files
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from agentwheel.core.resources import bundled_data
from agentwheel.flywheels.industrial.synth import synth_industrial

# kind → (templates, how many) parts, in file order
FIXTURES = {
    "search": [
        (("lead_office", "lead_manager", "budget_sum", "office_opened", "not_in_data"), 20),
        (("clarify_teammate",), 4),
    ],
    "analysis": [
        (
            (
                "status_count_month",
                "net_revenue",
                "top_city",
                "missing_segment",
                "top_products",
                "cities_for_product",
                "avg_order_value",
                "orders_after_signup",
                "not_in_data",
            ),
            27,
        ),
        (("clarify_period",), 4),
    ],
}
SEED = 7


def main() -> None:
    for kind, parts in FIXTURES.items():
        lines = []
        for templates, count in parts:
            with tempfile.TemporaryDirectory() as scratch:
                manifest = synth_industrial(
                    Path(scratch),
                    kind,  # type: ignore[arg-type]
                    count,
                    seed=SEED,
                    templates=templates,
                )
                lines.append((Path(scratch) / "tasks.jsonl").read_text(encoding="utf-8"))
            print(f"{kind}: {manifest.tasks} tasks {manifest.tasks_by_template}")
        target = bundled_data(f"{kind}-fixtures") / f"{kind}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(lines), encoding="utf-8")
        print(f"→ {target}")


if __name__ == "__main__":
    main()
