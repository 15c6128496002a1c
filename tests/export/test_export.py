import pyarrow.parquet as pq
import pytest

from agentwheel.core.task import Task
from agentwheel.envs.reward import expected_state
from agentwheel.export.datasets import (
    VERL_AGENT_NAME,
    export_parquet,
    export_verl,
    task_from_verl_extra_info,
)
from tests.envs.sample_tasks import ALL_KINDS, make_task

TASKS = [make_task(k) for k in ALL_KINDS]


def test_parquet_round_trips_every_task(tmp_path):
    table = pq.read_table(export_parquet(TASKS, tmp_path / "tasks.parquet")).to_pylist()
    assert [r["branch_kind"] for r in table] == ALL_KINDS
    assert [Task.model_validate_json(r["task_json"]) for r in table] == TASKS
    assert {r["backend"] for r in table} == {"sqlite"}


def test_verl_layout_carries_prompt_reward_target_and_environment_arguments(tmp_path):
    rows = pq.read_table(export_verl(TASKS, tmp_path / "train.parquet")).to_pylist()
    first = rows[0]
    assert first["agent_name"] == VERL_AGENT_NAME
    assert [m["role"] for m in first["prompt"]] == ["system", "user"]
    assert first["prompt"][1]["content"] == TASKS[0].user.request
    assert first["reward_model"]["ground_truth"] == expected_state(TASKS[0], "sqlite")
    assert first["extra_info"]["index"] == 0 and first["extra_info"]["split"] == "train"
    assert task_from_verl_extra_info(first["extra_info"]) == TASKS[0]
    assert "tools" not in first["extra_info"]  # verl never reads it; the task carries them


def test_a_row_without_a_task_is_refused_by_name():
    with pytest.raises(ValueError, match="task_json"):
        task_from_verl_extra_info({"index": 0})


def test_cli_exports_the_bundled_fixtures(tmp_path):
    from typer.testing import CliRunner

    from agentwheel.cli import app

    result = CliRunner().invoke(
        app, ["export", "fixtures", "--out", str(tmp_path / "f.parquet"), "--format", "verl"]
    )
    assert result.exit_code == 0, result.output
    rows = pq.read_table(tmp_path / "f.parquet").to_pylist()
    assert len(rows) == 42 and {r["agent_name"] for r in rows} == {VERL_AGENT_NAME}
