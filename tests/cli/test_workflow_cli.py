"""Workflows on the command line: `validate --workflows`, synth's exit code on a rejected
workflow, `evolve agentic --workflows`, task directories read through their manifest,
and report paths resolved against the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.core.dataset import load_tasks
from agentwheel.flywheels.agentic.workflow_loader import workflow_paths
from tests.flywheels.small_workflow import small_data

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "bike_rental_damage.yaml"


def run(args: list[str]):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def split_claim_workflow(directory: Path) -> Path:
    data = small_data()
    data["id"] = "split_claims"
    data["steps"][0]["preconditions"][1]["false_claims"] = ["I never renewed it", "not once."]
    path = directory / "split.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_validate_workflows_passes_the_bundled_ones():
    result = run(["validate", "--workflows", "bundled"])
    assert result.exit_code == 0, result.output
    n = len(workflow_paths())
    assert n >= 12 and f"{n} of {n} workflow files load" in result.output


def test_validate_workflows_names_file_and_field_and_exits_1(tmp_path):
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(small_data(), sort_keys=False))
    bad = split_claim_workflow(tmp_path)
    result = run(["validate", "--workflows", tmp_path])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert f"{bad}: steps.0.preconditions.1.false_claims.0:" in output
    assert "pieces of one sentence" in output and "1 of 2 workflow files load" in output


def test_a_missing_workflows_path_is_one_error_line(tmp_path):
    for args in (
        ["validate", "--workflows", tmp_path / "nope"],
        ["synth", "agentic", "--workflows", tmp_path / "nope", "--out", tmp_path / "o"],
    ):
        result = run(args)
        assert result.exit_code == 1
        assert "no such file or directory" in result.output and "'bundled'" in result.output


def test_synth_exits_1_when_a_workflow_is_rejected_and_prints_the_field(tmp_path):
    (tmp_path / "wfs").mkdir()
    (tmp_path / "wfs" / "good.yaml").write_text(yaml.safe_dump(small_data(), sort_keys=False))
    split_claim_workflow(tmp_path / "wfs")
    args = ["synth", "agentic", "--workflows", tmp_path / "wfs", "--out", tmp_path / "out"]
    result = run([*args, "--tasks-per-workflow", "5"])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "split.yaml: steps.0.preconditions.1.false_claims.0" in output
    assert "1 workflow file(s) rejected" in output
    assert len(load_tasks(tmp_path / "out").tasks) == 5  # the good workflow's tasks


def synth_dir(tmp_path: Path) -> Path:
    out = tmp_path / "synth"
    result = run(
        ["synth", "agentic", "--workflows", EXAMPLE, "--out", out, "--tasks-per-workflow", "10"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_a_stage_directory_is_read_through_its_manifest(tmp_path):
    out = synth_dir(tmp_path)
    # What evolve and the LLM expander leave next to the tasks: not tasks.
    (out / "band_traces.jsonl").write_text('{"task_id": "x", "passed": true}\n' * 3)
    (out / "trees.jsonl").write_text('{"workflow": "x"}\n')
    assert (out / "rejections.jsonl").exists()
    loaded = load_tasks(out)
    assert loaded.sources == [str(out / "tasks.jsonl")] and loaded.errors == []
    result = run(["validate", out])
    assert result.exit_code == 0, result.output
    assert "unreadable lines" in result.output and "│ kept" in result.output
    assert "skipped" not in result.output


def test_an_eval_run_directory_is_not_a_task_directory(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "traces.jsonl").write_text("{}\n")
    with pytest.raises(FileNotFoundError, match="eval run directory"):
        load_tasks(tmp_path)


def test_evolve_takes_workflows_and_resolves_the_report_against_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    synth_dir(Path("."))
    result = run(["eval", "--tasks", "synth", "--policy", "refuse", "--out", "runs/eval0"])
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("runs/eval0/summary.json").read_text())
    assert summary["tasks"] == "../../synth"  # relative to the report's directory
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    report = tmp_path / "runs" / "eval0"
    common = ["evolve", "agentic", "--report", report, "--policy", "refuse", "--no-band"]
    common += ["--samples", "1", "--tasks-per-workflow", "6", "--operators", "deepen"]
    without = run([*common, "--out", tmp_path / "evolved0"])
    assert without.exit_code == 1
    assert "no workflow for: bike_rental_damage" in " ".join(without.output.split())
    with_workflows = run([*common, "--out", tmp_path / "evolved1", "--workflows", EXAMPLE])
    assert with_workflows.exit_code == 0, with_workflows.output
    evolved = load_tasks(tmp_path / "evolved1").tasks
    assert evolved and {t.lineage.source_workflow for t in evolved} == {"bike_rental_damage"}
    assert {t.lineage.round for t in evolved} == {1}
