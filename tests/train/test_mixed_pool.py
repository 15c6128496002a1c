"""One schedule trains on workflow, search and analysis tasks together
(`data.extra_train_tasks`): the tiny model, one round drawn from the mixed pool."""

from __future__ import annotations

import json

import pytest

from agentwheel.core.dataset import load_tasks
from agentwheel.settings.schedule import load_config
from agentwheel.train.schedule import run_schedule
from tests.train.test_schedule import TINY

MIX = [
    "data.extra_train_tasks=[search-fixtures, analysis-fixtures]",
    "sft.max_tasks=6",
    "rounds=[{kind: agentic, steps: 1, batch_groups: 16, group_size: 2, max_attempts: 1,"
    " evolve: false}]",
]


def kind_of(task_id: str, search: set[str], analysis: set[str]) -> str:
    return "search" if task_id in search else "analysis" if task_id in analysis else "workflow"


def test_one_run_trains_on_workflow_search_and_analysis_tasks(tmp_path):
    config = load_config(TINY, MIX)
    run_schedule(config, tmp_path, log=lambda _: None)
    search = {t.id for t in load_tasks("search-fixtures").tasks}
    analysis = {t.id for t in load_tasks("analysis-fixtures").tasks}
    pool = load_tasks(tmp_path / "data" / "train" / "tasks.jsonl").tasks
    assert {kind_of(t.id, search, analysis) for t in pool} == {"workflow", "search", "analysis"}
    rolled = {
        json.loads(line)["task_id"]
        for path in (tmp_path / "rounds").rglob("*.jsonl")
        if "rollout" in path.as_posix()
        for line in path.read_text().splitlines()
        if line.strip()
    }
    assert {kind_of(i, search, analysis) for i in rolled} == {"workflow", "search", "analysis"}
    metrics = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("stage") == "grpo" and m.get("trained_tokens", 0) > 0 for m in metrics)


def test_an_unreadable_extra_task_set_is_one_clear_error(tmp_path):
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    config = load_config(TINY, [f"data.extra_train_tasks=[{tmp_path / 'bad.jsonl'}]"])
    with pytest.raises(ValueError, match="extra_train_tasks"):
        run_schedule(config, tmp_path / "run", log=lambda _: None)
