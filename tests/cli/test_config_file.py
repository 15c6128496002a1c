"""`--config` takes a path or a bundled name; unknown keys are found at any depth."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentwheel.cli.config_file import first_unknown_key, load_schedule_config
from agentwheel.cli.errors import UserError
from agentwheel.core.resources import bundled_config, find_config
from agentwheel.settings.schedule import ScheduleConfig, load_config


def test_a_bundled_name_loads_the_bundled_file_with_overrides():
    expected = load_config(bundled_config("tiny"), ["grpo.lr=2e-6"])
    assert load_schedule_config("tiny", ["grpo.lr=2e-6"]) == expected
    assert load_schedule_config("tiny.yaml", ["grpo.lr=2e-6"]).grpo.lr == 2e-6


def test_a_file_of_that_name_wins_over_the_bundled_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").write_text(bundled_config("tiny").read_text() + "\nname: local\n")
    assert find_config("tiny") == Path("tiny")
    assert load_schedule_config("tiny").name == "local"


def test_a_path_with_directories_is_never_taken_for_a_bundled_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="bundled: demo"):
        find_config(tmp_path / "tiny")


def test_unknown_keys_are_found_inside_dataclasses_lists_and_round_kinds():
    raw = {"grpo": {"lora": {"rnk": 4}}}
    assert first_unknown_key(raw, ScheduleConfig, []) == (
        ["grpo", "lora", "rnk"],
        ["alpha", "dropout", "rank", "target_modules"],
    )
    rounds = {"rounds": [{"kind": "agentic"}, {"kind": "reasoning", "probe_tasks": 2}]}
    key, known = first_unknown_key(rounds, ScheduleConfig, []) or ([], [])
    assert key == ["rounds", "1", "probe_tasks"] and "probe_problems" in known
    assert (
        first_unknown_key({"rounds": [{"kind": "agentic", "probe_tasks": 2}]}, ScheduleConfig, [])
        is None
    )


def test_a_nested_typo_names_its_origin_and_the_likely_key():
    with pytest.raises(UserError) as caught:
        load_schedule_config("tiny", ["grpo.lora.rnk=4"])
    message = str(caught.value)
    assert "grpo.lora.rnk (from --set grpo.lora.rnk=4)" in message
    assert "did you mean grpo.lora.rank?" in message


def test_check_config_checks_schedules_and_studies_without_running_them(tmp_path):
    from typer.testing import CliRunner

    from agentwheel.cli import app

    runner = CliRunner()
    for name, schema in (("tiny", "ScheduleConfig"), ("study-tiny", "StudyConfig")):
        result = runner.invoke(app, ["check-config", "--config", name])
        assert result.exit_code == 0, result.output
        assert f"ok: {name}: {schema}" in result.output
    bad = runner.invoke(app, ["check-config", "--config", "tiny", "--set", "rounds.0.stepz=3"])
    assert bad.exit_code == 1
    assert "unknown config key rounds.0.stepz" in bad.output and "did you mean" in bad.output
    unknown = runner.invoke(
        app, ["check-config", "--config", "tiny", "--set", "data.held_out_workflows=[nope]"]
    )
    assert unknown.exit_code == 1 and "unknown workflow ids ['nope']" in unknown.output
