import json

from typer.testing import CliRunner

from agentwheel.cli.reasoning import app

runner = CliRunner()


def test_synth_command_writes_the_stage_outputs(tmp_path):
    out = tmp_path / "seeds"
    result = runner.invoke(app, ["synth", "--seeds", "gym:chain_sum:5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["kept"] == 5 and manifest["counts"]["kept_procedural"] == 5
    assert len((out / "problems.jsonl").read_text().splitlines()) == 5


def test_synth_command_reports_a_bad_seeds_spec(tmp_path):
    result = runner.invoke(
        app, ["synth", "--seeds", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "no seed file" in result.output


def test_evolve_command_reports_an_unknown_model_spec(tmp_path):
    (tmp_path / "problems.jsonl").write_text("")
    result = runner.invoke(
        app,
        ["evolve", "--report", str(tmp_path), "--policy", "nonsense", "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 1
    assert "unknown model spec" in result.output
