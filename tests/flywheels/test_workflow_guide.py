"""docs/workflows.md stays true: its worked example loads and makes tasks that pass the
gate, and each error it quotes is the loader's message for the mistake it describes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from agentwheel.core.dataset import load_tasks
from agentwheel.flywheels.agentic.synth import synth_agentic
from agentwheel.flywheels.agentic.validate import validate_tasks
from agentwheel.flywheels.agentic.workflow_loader import (
    BUNDLED_WORKFLOWS,
    WorkflowError,
    load_workflow,
)

REPO = Path(__file__).resolve().parents[2]
GUIDE = (REPO / "docs" / "workflows.md").read_text()
EXAMPLE = REPO / "docs" / "examples" / "bike_rental_damage.yaml"
HR = BUNDLED_WORKFLOWS / "hr_leave_request.yaml"

# (file, text in it, replaced by) → the mistake the guide shows
MISTAKES = {
    "choice typo": (EXAMPLE, "value: [active, returned]", "value: [active, retruned]"),
    "out of range": (EXAMPLE, "        value: 500\n", "        value: 5000\n"),
    "quoted number": (EXAMPLE, "        value: 14\n", '        value: "14"\n'),
    "yaml no": (EXAMPLE, 'value: "no"', "value: no"),
    "non-ISO date": (HR, 'value: "2025-06-16"', 'value: "06/16/2025"'),
    "split claim": (
        EXAMPLE,
        '["I paid a much bigger deposit than that, check again."]',
        "[I paid a much bigger deposit than that, check again.]",
    ),
    "not a sentence": (
        EXAMPLE,
        '["I paid a much bigger deposit than that, check again."]',
        '["bigger deposit"]',
    ),
    "in with value_from": (
        EXAMPLE,
        "        op: in\n        value: [active, returned]\n",
        "        op: in\n        value_from: rentals.bike\n",
    ),
    "no entity": (EXAMPLE, "    entity: rentals\n", ""),
    "misspelt field": (EXAMPLE, "field: days_since_pickup", "field: days_since_pick_up"),
    "never decides": (EXAMPLE, "        value: 14\n", "        value: 30\n"),
    "missing table": (EXAMPLE, "INSERT INTO damage_reports (", "INSERT INTO damage_report ("),
    "placeholder": (EXAMPLE, ":repair_cost)", ":cost)"),
    "parameter type": (EXAMPLE, "repair_cost: number}", "repair_cost: string}"),
    "unstated argument": (
        EXAMPLE,
        "    - have the {request.repair_cost} repair taken from my deposit\n",
        "    - have the repair taken from my deposit\n",
    ),
    "later table": (
        EXAMPLE,
        "customer_id: {ref: customers.customer_id}",
        "customer_id: {ref: damage_reports.rental_id}",
    ),
}


def test_the_worked_example_makes_tasks_that_pass_the_gate(tmp_path):
    assert "examples/bike_rental_damage.yaml" in GUIDE
    workflow = load_workflow(EXAMPLE)
    assert workflow.id == "bike_rental_damage"
    manifest = synth_agentic(tmp_path, [EXAMPLE], tasks_per_workflow=40)
    tasks = load_tasks(tmp_path).tasks
    assert manifest.tasks == len(tasks) == 40
    assert Counter(t.branch_kind for t in tasks) == {
        k: 8 for k in ("happy", "clarify", "refuse", "transfer", "adversarial")
    }
    for backend in ("mock", "sqlite"):
        assert validate_tasks(tasks, backend=backend).counts == {"kept": 40}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_guide_quotes_the_loaders_error(tmp_path, mistake):
    source, old, new = MISTAKES[mistake]
    text = source.read_text()
    assert text.count(old) >= 1
    path = tmp_path / "wf.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(WorkflowError) as info:
        load_workflow(path)
    field, message = info.value.problems[0]
    assert f"{field}: {message}" in GUIDE
