import json
from collections import Counter

import yaml

from agentwheel.core.dataset import load_tasks
from agentwheel.core.rejection import Rejection
from agentwheel.core.run_layout import MANIFEST_FILE, REJECTIONS_FILE, TASKS_FILE
from agentwheel.core.task import ToolCallStep
from agentwheel.flywheels.agentic.evolve import learnable_band
from agentwheel.flywheels.agentic.synth import (
    counts_by_reason,
    gate,
    synth_agentic,
)
from agentwheel.flywheels.agentic.validate import validate_tasks
from agentwheel.flywheels.agentic.workflow_loader import parse_workflow
from tests.envs.sample_tasks import make_task
from tests.flywheels.evolve_report import evolve_refused, refuse_report
from tests.flywheels.small_workflow import small_data

WORKFLOWS = [
    "agentwheel/data/workflows/retail_order_cancel.yaml",
    "agentwheel/data/workflows/banking_transfer.yaml",
]


def test_synth_writes_validated_tasks_and_a_manifest(tmp_path):
    manifest = synth_agentic(tmp_path, WORKFLOWS, tasks_per_workflow=10)
    tasks = load_tasks(tmp_path / TASKS_FILE).tasks
    assert manifest.tasks == len(tasks) >= 18
    assert set(manifest.tasks_by_kind) == {"happy", "clarify", "refuse", "transfer", "adversarial"}
    assert set(manifest.tasks_by_domain) == {"retail", "banking"}
    assert manifest.mean_tree_depth > 2
    assert json.loads((tmp_path / MANIFEST_FILE).read_text())["tasks"] == len(tasks)
    assert validate_tasks(tasks).counts == {"kept": len(tasks)}


def test_synth_writes_each_rejection_as_one_record_and_counts_it(tmp_path):
    bad = small_data()
    bad["id"] = "bad_op"
    bad["steps"][0]["preconditions"][0]["op"] = "roughly"
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(yaml.safe_dump(bad))
    # renewals must be < 2 and >= 3 at once: the branches that need both get no world.
    contradictory = small_data()
    contradictory["steps"][0]["preconditions"].append(
        {"id": "veteran", "field": "renewals", "op": "ge", "value": 3, "rule": "Odd rule."}
    )
    workflow = parse_workflow(contradictory)
    manifest = synth_agentic(tmp_path / "out", [workflow, bad_file], tasks_per_workflow=10)
    lines = (tmp_path / "out" / REJECTIONS_FILE).read_text().splitlines()
    rejections = [Rejection.model_validate_json(line) for line in lines]
    load = [r for r in rejections if r.stage == "load"]
    assert [(r.item, r.reason, r.field) for r in load] == [
        (str(bad_file), "invalid_workflow", "steps.0.preconditions.0.op")
    ]
    world = [r for r in rejections if r.stage == "world"]
    assert world and {r.reason for r in world} == {"no_world"}
    assert all(r.item == workflow.id and r.context["branch"] for r in world)
    counted = Counter(f"{r.stage}:{r.reason}" for r in rejections)
    assert manifest.rejections_by_reason == dict(counted)
    assert manifest.rejections_by_reason["load:invalid_workflow"] == 1


def test_gate_appends_validation_rejections_to_the_expansion_ones():
    broken = make_task("happy").model_copy(deep=True)
    broken.id = "broken"
    broken.normal_path[0] = ToolCallStep(tool="get_order", arguments={"order_id": "O-404"})
    broken.user.known_facts["other"] = "O-404"
    earlier = Rejection(stage="world", item="w", reason="no_world", context={"branch": "b"})
    report, rejections = gate([broken, make_task("refuse")], [earlier])
    assert [t.id for t in report.kept] == ["orders-refuse"]
    assert rejections[0] == earlier
    assert [(r.stage, r.item, r.reason) for r in rejections[1:]] == [
        ("validate", "broken", "normal_path_error")
    ]
    assert counts_by_reason(rejections) == {"validate:normal_path_error": 1, "world:no_world": 1}


def test_evolve_grows_deeper_trees_where_the_policy_fails(tmp_path):
    report = refuse_report(tmp_path, WORKFLOWS)
    manifest = evolve_refused(report, tmp_path / "round1", ("deepen",))
    evolved = load_tasks(tmp_path / "round1" / TASKS_FILE).tasks
    assert manifest.round == 1 and len(evolved) == manifest.tasks > 0
    assert all(t.lineage.round == 1 and t.lineage.operator == "deepen" for t in evolved)
    assert manifest.tasks_by_operator == {"deepen": len(evolved)}
    assert {t.lineage.parent_id for t in evolved} == {
        "retail_order_cancel@round0",
        "banking_transfer@round0",
    }
    assert manifest.evolved_tree_shape["depth"] > manifest.parent_tree_shape["depth"]
    # The refuse policy fails happy/clarify/transfer branches: the evolved set leans on them.
    assert manifest.evolved_pass_rate < manifest.parent_pass_rate
    # Refusals come from the branches the deeper tree added; most sit below a missing
    # identifier, where declining without asking first fails.
    refusals = [t for t in evolved if t.branch_kind in ("refuse", "adversarial")]
    nested = [t for t in refusals if "clarification" in t.evaluation.required_signals]
    assert refusals and len(nested) * 2 >= len(refusals)
    assert all(t.lineage.branch.startswith("clarify.") for t in nested)
    # like for like: the hasty refuser passes every parent refusal, not the nested ones
    assert manifest.parent_pass_rate_by_kind == {
        "adversarial": 1.0,
        "clarify": 0.0,
        "happy": 0.0,
        "refuse": 1.0,
        "transfer": 0.0,
    }
    evolved_rates = manifest.evolved_pass_rate_by_kind
    assert {"refuse", "happy", "clarify", "transfer"} <= set(evolved_rates)
    assert all(evolved_rates[k] < 1.0 for k in ("refuse", "adversarial") if k in evolved_rates)
    assert evolved_rates["happy"] == evolved_rates["clarify"] == evolved_rates["transfer"] == 0.0
    assert validate_tasks(evolved).counts == {"kept": len(evolved)}


def test_learnable_band_keeps_only_sometimes_solved_tasks():
    keep, counts = learnable_band({"a": 0.0, "b": 0.25, "c": 1.0, "d": 0.75})
    assert keep == {"b", "d"}
    assert counts == {"kept": 2, "too_easy": 1, "too_hard": 1}


def test_evolve_command_prints_rates_by_kind_and_flags_a_policy_change(tmp_path):
    from typer.testing import CliRunner

    from agentwheel.cli import app

    report = refuse_report(tmp_path, WORKFLOWS[:1], tasks_per_workflow=6)
    out = tmp_path / "round1"
    args = ["evolve", "agentic", "--report", str(report), "--out", str(out), "--no-band"]
    result = CliRunner().invoke(app, [*args, "--policy", "oracle", "--samples", "1"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["report_policy"] == "hasty" and manifest["policy"] == "oracle"
    assert manifest["evolved_pass_rate"] == 1.0
    assert "pass rate, refuse (parent → evolved)" in result.output
    assert "compare two policies" in result.output
