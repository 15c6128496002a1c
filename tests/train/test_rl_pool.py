"""An RL pool of its own (`data.rl_tasks_per_workflow`): new tasks of the train workflows,
none matching a train-pool or held-out task, that the first agentic round draws from."""

from __future__ import annotations

import json

import pytest

from agentwheel.core.dataset import load_tasks
from agentwheel.core.run_layout import RunLayout
from agentwheel.settings.schedule import load_config
from agentwheel.train.phases import task_fingerprint
from agentwheel.train.schedule import run_schedule
from tests.train.test_schedule import TINY

RL_POOL = [
    "data.rl_tasks_per_workflow=2",
    "sft.enabled=false",
    "rounds=[{kind: agentic, steps: 1, batch_groups: 4, group_size: 2, max_attempts: 1,"
    " evolve: false}]",
]


def rolled_task_ids(run_dir) -> set[str]:
    return {
        json.loads(line)["task_id"]
        for path in (run_dir / "rounds").rglob("*.jsonl")
        if "rollout" in path.as_posix()
        for line in path.read_text().splitlines()
        if line.strip()
    }


def test_rl_draws_from_new_tasks_that_sft_and_the_held_out_set_never_hold(tmp_path):
    run_schedule(load_config(TINY, RL_POOL), tmp_path, log=lambda _: None)
    layout = RunLayout(tmp_path)
    rl = load_tasks(layout.rl_tasks).tasks
    pool = load_tasks(layout.train_tasks).tasks
    held_out = load_tasks(layout.held_out_tasks).tasks
    assert len(rl) >= 2
    taken = {task_fingerprint(t) for t in [*pool, *held_out]}
    assert not {task_fingerprint(t) for t in rl} & taken
    assert not {t.id for t in rl} & {t.id for t in [*pool, *held_out]}
    rolled = rolled_task_ids(tmp_path)
    assert rolled and rolled <= {t.id for t in rl}


def test_a_run_reusing_the_data_reuses_its_rl_pool(tmp_path):
    first = tmp_path / "first"
    run_schedule(load_config(TINY, [*RL_POOL, "rounds=[]"]), first, log=lambda _: None)
    second = tmp_path / "second"
    reuse = [*RL_POOL, "rounds=[]", f"data.reuse_from={RunLayout(first).data}"]
    run_schedule(load_config(TINY, reuse), second, log=lambda _: None)
    assert RunLayout(second).rl_tasks.read_text() == RunLayout(first).rl_tasks.read_text()


def test_without_the_setting_rl_draws_from_the_train_pool(tmp_path):
    no_pool = [o for o in RL_POOL if not o.startswith("data.")]
    run_schedule(load_config(TINY, no_pool), tmp_path, log=lambda _: None)
    layout = RunLayout(tmp_path)
    assert not layout.rl_tasks.exists()
    rolled = rolled_task_ids(tmp_path)
    assert rolled and rolled <= {t.id for t in load_tasks(layout.train_tasks).tasks}


def test_rl_only_workflows_join_the_rl_pool_and_nothing_else(tmp_path):
    rl_only = [*RL_POOL, "data.rl_workflows=[hotel_booking]"]
    run_schedule(load_config(TINY, rl_only), tmp_path, log=lambda _: None)
    layout = RunLayout(tmp_path)

    def workflows(path) -> set[str]:
        return {t.lineage.source_workflow for t in load_tasks(path).tasks}

    assert workflows(layout.rl_tasks) == {
        "retail_order_cancel",
        "banking_transfer",
        "hotel_booking",
    }
    assert "hotel_booking" not in workflows(layout.train_tasks) | workflows(layout.held_out_tasks)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.rl_workflows=[hotel_booking]"], "needs data.rl_tasks_per_workflow"),
        (["data.rl_tasks_per_workflow=2", "data.rl_workflows=[clinic_reschedule]"], "held out"),
        (["data.rl_tasks_per_workflow=2", "data.rl_workflows=[banking_transfer]"], "SFT's"),
    ],
)
def test_an_rl_workflow_that_is_also_trained_or_held_out_is_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(TINY, overrides)


def test_a_reused_rl_pool_of_other_workflows_is_refused(tmp_path):
    first = tmp_path / "first"
    run_schedule(load_config(TINY, [*RL_POOL, "rounds=[]"]), first, log=lambda _: None)
    other = [*RL_POOL, "rounds=[]", "data.rl_workflows=[hotel_booking]"]
    reuse = [*other, f"data.reuse_from={RunLayout(first).data}"]
    with pytest.raises(ValueError, match="hotel_booking"):
        run_schedule(load_config(TINY, reuse), tmp_path / "second", log=lambda _: None)
