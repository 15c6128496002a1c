"""Round kinds: the registry, and a third kind added by one class and run by the driver."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field, ValidationError

from agentwheel.core.dataset import load_tasks, write_tasks
from agentwheel.core.run_layout import RoundLayout
from agentwheel.core.task import Task
from agentwheel.settings.agentic_round import AgenticRound
from agentwheel.settings.reasoning_round import ReasoningRound
from agentwheel.settings.rl_round import RLRound
from agentwheel.settings.schedule import ScheduleConfig, load_config
from agentwheel.train.report import read_metrics
from agentwheel.train.rollout import RolloutBatch, TaskStream, collect_groups
from agentwheel.train.rounds.agentic import AgenticRounds
from agentwheel.train.rounds.base import Band, RoundKind
from agentwheel.train.rounds.reasoning import ReasoningRounds
from agentwheel.train.rounds.registry import (
    ROUND_KINDS,
    register_round_kind,
    round_kind,
    unregister_round_kind,
)
from agentwheel.train.run_context import RunContext
from agentwheel.train.schedule import run_schedule
from tests.train.conftest import require_bundled_gguf

TINY = Path(__file__).parents[2] / "agentwheel" / "configs" / "tiny.yaml"
DATA = {"held_out_workflows": ["clinic_reschedule"]}


def test_the_registry_maps_both_kinds_to_their_settings():
    assert isinstance(round_kind("agentic"), AgenticRounds)
    assert isinstance(round_kind("reasoning"), ReasoningRounds)
    config = ScheduleConfig.model_validate(
        {"data": DATA, "rounds": [{"kind": "reasoning", "steps": 3}, {"kind": "agentic"}]}
    )
    assert [type(r) for r in config.rounds] == [ReasoningRound, AgenticRound]
    assert config.rounds[0].steps == 3
    # Dumped with every field of its kind, and read back equal.
    dumped = config.model_dump(mode="json")
    assert dumped["rounds"][0]["answer_format"]["name"] == "boxed"
    assert dumped["rounds"][1]["operators"] == ["deepen", "lookup"]
    assert ScheduleConfig.model_validate(dumped) == config


def test_an_unknown_or_missing_kind_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown round kind 'search'; known kinds: \['agentic'"):
        round_kind("search")
    with pytest.raises(ValidationError) as err:
        ScheduleConfig.model_validate(
            {"data": DATA, "rounds": [{"kind": "agentic"}, {"kind": "search"}]}
        )
    [error] = err.value.errors()
    assert error["loc"] == ("rounds", 1, "kind")
    assert "unknown round kind 'search'" in error["msg"] and "'reasoning'" in error["msg"]
    with pytest.raises(ValidationError, match="a round needs a `kind:`"):
        ScheduleConfig.model_validate({"data": DATA, "rounds": [{"steps": 2}]})


def test_a_bad_round_field_is_located_by_the_round_index():
    with pytest.raises(ValidationError) as err:
        ScheduleConfig.model_validate(
            {"data": DATA, "rounds": [{"kind": "agentic"}, {"kind": "reasoning", "probe_tasks": 1}]}
        )
    [error] = err.value.errors()
    # probe_tasks is an agentic knob: the reasoning round rejects it, naming the round.
    assert error["loc"] == ("rounds", 1, "probe_tasks") and error["type"] == "extra_forbidden"


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="already registered"):
        register_round_kind(AgenticRounds())
    assert isinstance(ROUND_KINDS["agentic"], AgenticRounds)


# A third kind, written as any new kind would be: its settings, its pool, its "flywheel",
# its files and its rollouts.


class FixedPoolRound(RLRound):
    kind: Literal["fixed-pool"] = "fixed-pool"
    pool_size: int = Field(2, ge=1, description="Train-pool tasks this round starts from.")
    band_size: int = Field(1, ge=0, description="Pool tasks the flywheel keeps as its band.")


class FixedPoolRounds(RoundKind[FixedPoolRound, Task]):
    """Agentic episodes on the first tasks of the train pool; its 'flywheel' keeps the
    first `band_size` of them."""

    name = "fixed-pool"
    settings = FixedPoolRound

    def pool(self, run: RunContext, round_: int, settings: FixedPoolRound) -> list[Task]:
        return load_tasks(run.layout.train_tasks).tasks[: settings.pool_size]

    def evolve(
        self, run: RunContext, round_: int, settings: FixedPoolRound, pool: list[Task]
    ) -> Band[Task] | None:
        return Band(pool[: settings.band_size], {"band": settings.band_size})

    def write_selection(
        self, files: RoundLayout, items: list[Task], pool: list[Task], band: list[Task]
    ) -> None:
        write_tasks(items, files.tasks)

    def selected_items(self, files: RoundLayout) -> list[Task]:
        return load_tasks(files.tasks).tasks

    def collect_groups(
        self,
        run: RunContext,
        round_: int,
        settings: FixedPoolRound,
        stream: TaskStream[Task],
        step: int,
    ) -> RolloutBatch:
        return collect_groups(
            lambda attempt: run.policy.rollout_policy(round_, step, attempt),
            stream,
            settings.batch_groups,
            settings.group_size,
            dynamic_sampling=False,
            runner_config=run.runner_config,
        )


@pytest.fixture
def fixed_pool():
    kind = register_round_kind(FixedPoolRounds())
    yield kind
    unregister_round_kind(kind.name)


def test_a_new_kind_is_one_class_and_runs_through_the_driver(fixed_pool, tmp_path):
    require_bundled_gguf()
    rounds = (
        "rounds=[{kind: fixed-pool, steps: 2, batch_groups: 1, group_size: 2, "
        "pool_size: 3, band_size: 1}, {kind: fixed-pool, steps: 1, batch_groups: 2, "
        "group_size: 2, pool_size: 2, band_size: 0}]"
    )
    overrides = ["sft.enabled=false", "tensorboard=false", "plots=false", rounds]
    config = load_config(TINY, overrides)
    assert [type(r) for r in config.rounds] == [FixedPoolRound, FixedPoolRound]
    state = run_schedule(config, tmp_path, log=lambda _: None)

    assert state.done == [
        "data",
        "eval:base",
        *(f"round-{r}:{p}" for r in (1, 2) for p in ("evolve", "grpo", "eval", "report")),
        "report",
    ]
    grpo = [m for m in read_metrics(tmp_path) if m["stage"] == "grpo"]
    assert [(m["round"], m["kind"], m["step"]) for m in grpo] == [
        (1, "fixed-pool", 1),
        (1, "fixed-pool", 2),
        (2, "fixed-pool", 1),
    ]
    assert [m["rollout_episodes"] for m in grpo] == [2, 2, 4]
    # Round 1 trains on its band (one task); round 2's band is empty: the pool, with a note.
    rounds_dir = tmp_path / "rounds"
    first = json.loads((rounds_dir / "round-1" / "report.json").read_text())
    assert first["kind"] == "fixed-pool" and first["settings"]["band_size"] == 1
    assert first["selection"] == {
        "pool_tasks": 3,
        "band": 1,
        "tasks_source": "learnable band of the fixed-pool flywheel",
        "train_tasks": 1,
    }
    band_task = load_tasks(tmp_path / "data" / "train" / "tasks.jsonl").tasks[0].id
    traces = (rounds_dir / "round-1" / "rollouts" / "traces.jsonl").read_text().splitlines()
    assert {json.loads(line)["task_id"] for line in traces} == {band_task}
    second = json.loads((rounds_dir / "round-2" / "selection.json").read_text())
    assert second["tasks_source"] == "fallback: the existing pool (the learnable band is empty)"
    assert "round 2: the learnable band is empty; training on the existing pool of 2 tasks" in (
        state.notes
    )
    # The saved config names the new kind and reads back equal while it is registered.
    assert load_config(tmp_path / "config.yaml") == config


def test_the_collapse_alarm_names_each_kind_below_its_sft_level_once():
    from types import SimpleNamespace

    from agentwheel.train.rounds.base import collapse_alarm
    from agentwheel.train.run_state import RunState

    state = RunState()
    run = SimpleNamespace(state=state, note=lambda text: state.notes.append(text))
    metrics = [
        {"stage": "eval", "eval": "base", "held_out_pass1_kind_happy": 0.0},
        {
            "stage": "eval",
            "eval": "sft",
            "held_out_pass1_kind_happy": 0.4,
            "held_out_pass1_kind_refuse": 0.1,
            "held_out_pass1_kind_clarify": 0.2,
        },
        {
            "stage": "eval",
            "eval": "round-1",
            "held_out_pass1_kind_happy": 0.0,
            "held_out_pass1_kind_refuse": 0.9,
            "held_out_pass1_kind_clarify": 0.2,
        },
    ]
    assert collapse_alarm(run, metrics, 1) == ["happy"]
    assert collapse_alarm(run, metrics, 1) == ["happy"]  # a rerun report adds no second note
    assert (
        len(state.notes) == 1 and "happy" in state.notes[0] and "0.400 -> 0.000" in state.notes[0]
    )
    # Without an SFT eval (a run started from another's SFT weights) the start is the level.
    no_sft = [m for m in metrics if m["eval"] != "sft"]
    assert collapse_alarm(run, no_sft, 1) == []
