"""Inputs built to hang or crash a command end in one `error:` line and exit code 1:
YAML alias bombs, configs that extend themselves, non-finite temperatures, damaged
run files."""

from __future__ import annotations

from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.core.resources import bundled_config
from tests.core.test_yaml_text import BILLION_LAUGHS

runner = CliRunner()


def error_line(args: list[str]) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return " ".join(result.output.split())


def test_a_workflow_alias_bomb_is_refused(tmp_path):
    workflow = tmp_path / "laughs.yaml"
    workflow.write_text(BILLION_LAUGHS)
    out = tmp_path / "out"
    line = error_line(["synth", "agentic", "--out", out, "--workflows", workflow])
    assert "expands to more than" in line
    checked = runner.invoke(app, ["validate", "--workflows", str(workflow)])
    assert checked.exit_code == 1 and "expands to more than" in checked.output


def test_a_config_alias_bomb_is_refused(tmp_path):
    config = tmp_path / "laughs.yaml"
    config.write_text(BILLION_LAUGHS)
    line = error_line(["train", "--config", config, "--out", tmp_path / "run"])
    assert "expands to more than" in line


def test_a_config_that_extends_itself_or_a_cycle_is_refused(tmp_path):
    itself = tmp_path / "self.yaml"
    itself.write_text("extends: self.yaml\nname: x\n")
    line = error_line(["train", "--config", itself, "--out", tmp_path / "run"])
    assert "cycle" in line and "self.yaml" in line
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    line = error_line(["train", "--config", tmp_path / "a.yaml", "--out", tmp_path / "run"])
    assert "cycle" in line and "a.yaml" in line and "b.yaml" in line


def test_an_infinite_temperature_in_a_config_file_is_refused(tmp_path):
    config = tmp_path / "hot.yaml"
    config.write_text("extends: tiny.yaml\nrollout: {temperature: .inf}\n")
    (tmp_path / "tiny.yaml").write_text(bundled_config("tiny").read_text())
    line = error_line(["train", "--config", config, "--out", tmp_path / "run"])
    assert "rollout.temperature" in line and "must be a finite number, got inf" in line


def test_a_task_whose_sql_is_a_huge_cross_join_is_rejected_by_validate(tmp_path):
    from agentwheel.core.dataset import load_tasks
    from tests.eval.test_eval_dir import RETAIL

    task = load_tasks(RETAIL).tasks[0]
    assert task.sqlite is not None
    aliases = ", ".join(f"orders AS x{i}" for i in range(7))
    join = (  # 20^7 rows counted for each order looked up
        f"SELECT o.* FROM orders AS o WHERE o.order_id = :order_id "
        f"AND (SELECT count(*) FROM {aliases}) > 0"
    )
    tools = {**task.sqlite.tools}
    tools["get_order"] = tools["get_order"].model_copy(update={"sql": [join]})
    world = task.sqlite.model_copy(update={"tools": tools})
    path = tmp_path / "join.jsonl"
    path.write_text(task.model_copy(update={"sqlite": world}).model_dump_json() + "\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert "budget" in " ".join(result.output.split())
