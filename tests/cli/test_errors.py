"""Every command turns a user's mistake into one `error:` line that names the thing and the
fix, with exit code 1 and no traceback; click's own usage errors keep exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agentwheel.cli import app

runner = CliRunner()


def error_line(args: list[str]) -> str:
    """The single error line of a run that failed with exit code 1 (not an exception)."""
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def usage_error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    return " ".join(result.output.split())


def bad_task_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text('not json\n{"id": "t1"}\n')
    return path


def test_eval(tmp_path):
    missing = error_line(["eval", "--tasks", str(tmp_path / "nope.jsonl")])
    assert "no dataset at" in missing and "nope.jsonl" in missing and "fixtures" in missing
    policy = error_line(["eval", "--policy", "gpt", "--out", str(tmp_path / "a")])
    assert "unknown policy 'gpt'" in policy and "oracle" in policy
    bad = error_line(["eval", "--tasks", str(bad_task_file(tmp_path))])
    assert "no valid tasks in" in bad and "2 unreadable lines" in bad
    assert "'--backend'" in usage_error(["eval", "--backend", "cloud"])


def test_synth_agentic(tmp_path):
    missing = error_line(["synth", "agentic", "--out", str(tmp_path / "o"), "--workflows", "nope"])
    assert "--workflows nope: no such file or directory" in missing
    workflow = tmp_path / "flow.yaml"
    workflow.write_text("id: [unclosed\n")
    bad = error_line(
        ["synth", "agentic", "--out", str(tmp_path / "o"), "--workflows", str(workflow)]
    )
    assert "no valid tasks from --workflows" in bad and "invalid YAML" in bad
    assert "rejections.jsonl" in bad
    assert "--teacher" in usage_error(
        ["synth", "agentic", "--out", str(tmp_path / "o"), "--expander", "llm"]
    )


def test_synth_reasoning(tmp_path):
    missing = error_line(
        ["synth", "reasoning", "--seeds", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)]
    )
    assert "no seed file" in missing and "nope.jsonl" in missing


def test_validate(tmp_path):
    assert "no dataset at" in error_line(["validate", str(tmp_path / "nope")])
    assert "no valid tasks in" in error_line(["validate", str(bad_task_file(tmp_path))])


def test_evolve_agentic(tmp_path):
    args = ["evolve", "agentic", "--report", str(tmp_path), "--out", str(tmp_path / "o")]
    no_report = error_line(args)
    assert "has no summary.json" in no_report and "agentwheel eval --out" in no_report
    for damaged in ('{"tasks": "retail", "k": ', "[]", "{}", '{"tasks": 3}', "\xff"):
        (tmp_path / "summary.json").write_text(damaged, encoding="latin-1")
        line = error_line(args)
        assert "summary.json" in line and ("not valid JSON" in line or "not an eval" in line)
    (tmp_path / "summary.json").write_text(json.dumps({"tasks": "retail"}))
    assert "unknown policy 'gpt'" in error_line([*args, "--policy", "gpt"])
    operators = usage_error([*args, "--operators", "widen"])
    assert "--operators" in operators and "deepen, lookup" in operators


def test_evolve_reasoning(tmp_path):
    args = ["evolve", "reasoning", "--report", str(tmp_path), "--out", str(tmp_path / "o")]
    no_report = error_line([*args, "--policy", "hf:default"])
    assert "has no problems.jsonl" in no_report and "synth reasoning" in no_report
    (tmp_path / "problems.jsonl").write_text("")
    assert "unknown model spec 'gpt'" in error_line([*args, "--policy", "gpt"])
    assert "'--answer-format'" in usage_error([*args, "--policy", "gpt", "--answer-format", "x"])


def test_export(tmp_path):
    out = tmp_path / "tasks.parquet"
    assert "no dataset at" in error_line(["export", str(tmp_path / "nope"), "--out", str(out)])
    assert "no valid tasks in" in error_line(
        ["export", str(bad_task_file(tmp_path)), "--out", str(out)]
    )
    into_dir = error_line(["export", "fixtures", "--out", str(tmp_path)])
    assert "is a directory" in into_dir and "tasks.parquet" in into_dir
    assert "'--format'" in usage_error(["export", "fixtures", "--out", str(out), "--format", "csv"])


def train(tmp_path: Path, *args: str) -> str:
    return error_line(["train", "--out", str(tmp_path / "run"), *args])


def test_train_config_file(tmp_path):
    missing = train(tmp_path, "--config", "nope.yaml")
    assert "no config file 'nope.yaml'" in missing
    assert "bundled: demo, " in missing and "tiny" in missing
    not_yaml = tmp_path / "config.yaml"
    not_yaml.write_text("name: [run\n")
    assert "is not valid YAML" in train(tmp_path, "--config", str(not_yaml))
    a_list = tmp_path / "list.yaml"
    a_list.write_text("- name\n")
    assert "holds a YAML list, not a mapping" in train(tmp_path, "--config", str(a_list))
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: x\ndata: {held_out_workflows: [hr_leave_request]}\ngrpo: {lrr: 1}\n")
    in_file = train(tmp_path, "--config", str(typo))
    assert "unknown config key grpo.lrr (in " in in_file and "did you mean grpo.lr?" in in_file
    study = train(tmp_path, "--config", "study")
    assert "is a learning-study config, not a training schedule" in study
    assert "run `agentwheel study --config study`" in study
    orphan = tmp_path / "orphan.yaml"
    orphan.write_text("extends: gone.yaml\nname: x\n")
    assert "extends a config that does not exist" in train(tmp_path, "--config", str(orphan))


def test_train_set_overrides(tmp_path):
    tiny = ["--config", "tiny"]  # a bundled name, not a path
    malformed = train(tmp_path, *tiny, "--set", "grpo")
    assert "--set 'grpo' is not key.path=value" in malformed and "--set grpo.lr=2e-6" in malformed
    unknown = train(tmp_path, *tiny, "--set", "grpo.lrr=1")
    assert "unknown config key grpo.lrr (from --set grpo.lrr=1)" in unknown
    assert "did you mean grpo.lr?" in unknown and "clip_high" in unknown
    top = train(tmp_path, *tiny, "--set", "optimizer.lr=1")
    assert "unknown config key optimizer" in top and "keys of the config:" in top
    past_end = train(tmp_path, *tiny, "--set", "rounds.9.steps=1")
    assert "rounds.9.steps does not name a key" in past_end
    wrong_type = train(tmp_path, *tiny, "--set", "rounds.0.steps=many")
    assert (
        "bad config value rounds.0" in wrong_type
        and "(from --set rounds.0.steps=many)" in wrong_type
    )
    assert "valid integer" in wrong_type
    model = train(tmp_path, *tiny, "--set", "model.spec=gpt")
    assert "unknown model spec 'gpt' in model.spec" in model and "hf:default" in model
    workflows = train(tmp_path, *tiny, "--set", "data.held_out_workflows=[nope]")
    assert "unknown workflow ids ['nope'] in data.held_out_workflows" in workflows
    assert "hr_leave_request" in workflows


def test_train_refuses_to_overwrite_a_run(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "state.json").write_text("{}")
    taken = train(tmp_path, "--config", "tiny")
    assert "already holds a run" in taken and "--resume" in taken


def test_demo(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert "is a file: pass a directory" in error_line(["demo", "--quick", "--out", str(a_file)])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "state.json").write_text("{}")
    taken = error_line(["demo", "--quick", "--out", str(tmp_path / "run")])
    assert "already holds a run" in taken


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    from agentwheel import __version__

    assert result.output.strip() == f"agentwheel {__version__}"
