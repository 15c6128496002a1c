"""The learning study on the tiny model: one SFT checkpoint shared by both RL arms, the same
RL budget in each, study.json's shape and ranges, resume without redoing finished arms, and
the config checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.cli.study import PUBLISHED
from agentwheel.core.dataset import load_tasks
from agentwheel.core.task import BRANCH_KINDS
from agentwheel.eval.stances import decline_rates
from agentwheel.study.config import ARMS, RL_ARMS, StudyConfig, load_study_config
from agentwheel.study.run import mixed_numerics, record_where_it_ran, run_study
from agentwheel.train.checkpoint import load_checkpoint, weights_digest
from agentwheel.train.model_factory import build_model
from agentwheel.train.phases import MissingBranchKinds
from agentwheel.train.report import read_metrics
from tests.train.conftest import one_torch_thread, require_bundled_gguf

TINY = Path(__file__).parents[2] / "agentwheel" / "configs" / "study-tiny.yaml"
STUDY = TINY.with_name("study.yaml")


@pytest.fixture(scope="module")
def config() -> StudyConfig:
    require_bundled_gguf()
    return load_study_config(TINY)


@pytest.fixture(scope="module")
def study(config, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("study")
    with one_torch_thread():
        result = run_study(config, out, log=lambda _: None)
    return out, result


def test_both_arms_start_from_the_shared_sft_checkpoint_on_the_shared_data(config, study):
    out, _ = study
    model = build_model(config.model, config.seed)
    base_digest = weights_digest(model.model)
    load_checkpoint(out / "shared" / "checkpoints" / "sft", model.model)
    sft_digest = weights_digest(model.model)
    assert sft_digest != base_digest
    held_out = [
        t.id for t in load_tasks(out / "shared" / "data" / "held_out" / "tasks.jsonl").tasks
    ]
    pool = [t.id for t in load_tasks(out / "shared" / "data" / "train" / "tasks.jsonl").tasks]
    for arm in RL_ARMS:
        state = json.loads((out / "arms" / arm / "state.json").read_text())
        assert state["started_from"]["weights_sha256"] == sft_digest
        assert "sft" not in state["done"]  # no SFT of its own
        data = out / "arms" / arm / "data"
        assert [t.id for t in load_tasks(data / "held_out" / "tasks.jsonl").tasks] == held_out
        assert [t.id for t in load_tasks(data / "train" / "tasks.jsonl").tasks] == pool
        # The arm's starting eval is the SFT eval (copied episodes, none run again).
        summary = json.loads((out / "arms" / arm / "evals" / "base" / "summary.json").read_text())
        assert summary["resumed_episodes"] == len(held_out)
        for r in (1, 2):
            assert (out / "arms" / arm / "checkpoints" / f"round-{r}" / "COMPLETE").exists()


def test_the_arms_get_the_same_rl_budget_flywheel_on_and_off(config, study):
    out, result = study
    budgets = {}
    for arm in RL_ARMS:
        steps = [m for m in read_metrics(out / "arms" / arm) if m["stage"] == "grpo"]
        budgets[arm] = [
            (m["round"], m["rollout_groups_informative"], m["rollout_episodes"]) for m in steps
        ]
        selections = [
            json.loads(
                (out / "arms" / arm / "rounds" / f"round-{r}" / "selection.json").read_text()
            )
            for r in (1, 2)
        ]
        evolved = ["evolved_generated" in s for s in selections]
        assert evolved == ([arm == "rl_flywheel"] * 2)
        # balance_kinds: every step's batch is logged by branch kind
        assert all(sum(m[f"batch_groups_{k}"] for k in BRANCH_KINDS) == 2 for m in steps)
    round_ = config.study.round
    assert (
        budgets["rl_static"]
        == budgets["rl_flywheel"]
        == [(r, round_.batch_groups, round_.batch_groups * round_.group_size) for r in (1, 2)]
    )
    assert result["rl_budget"]["groups_per_step"] == round_.batch_groups


def test_study_json_has_the_promised_shape_and_numbers_in_range(study):
    out, result = study
    on_disk = json.loads((out / "study.json").read_text())
    assert on_disk["arms"] == result["arms"]
    assert on_disk["held_out_tasks"] == 7 and on_disk["wall_s"] > 0
    assert on_disk["machine"]["cores"] >= 1
    assert set(on_disk["arms"]) == set(ARMS)
    for arm, a in on_disk["arms"].items():
        for key in ("pass1", "pass_hat_4", "unseen", "seen", "train_pool_pass1", "asked_again"):
            assert 0.0 <= a[key] <= 1.0, (arm, key)
        assert a["ci95"][0] <= a["pass1"] <= a["ci95"][1]
        assert set(a["by_branch_kind"]) == set(BRANCH_KINDS)
    # The scripted floor (look up, then decline) passes refusals only; within the tiny
    # config's two turns, those whose one lookup fits before the refusal.
    refuse = on_disk["arms"]["refuse"]["by_branch_kind"]
    assert refuse["happy"] == refuse["clarify"] == refuse["transfer"] == 0.0
    assert refuse["refuse"] == 1.0
    assert on_disk["arms"]["refuse"]["pass1"] == pytest.approx(1 / 7, abs=1e-4)
    assert on_disk["arms"]["refuse"]["asked_again"] == 0.0  # it asks only what is missing
    # Every failed episode says why: the floor's 6 failures, each missing something.
    floor_failed = on_disk["arms"]["refuse"]["failure_reasons"]
    assert sum(floor_failed.values()) >= 6 and max(floor_failed.values()) <= 6
    assert "asked_again" not in floor_failed and "hack_action" not in floor_failed
    # What the floor did: it never hands off, and its one pass
    # is a decline on a refuse task (within two turns some episodes end at the lookup or
    # the question, before the decline).
    floor = on_disk["arms"]["refuse"]["stances"]
    assert sum(c["episodes"] for row in floor.values() for c in row.values()) == 7
    assert all(row["handed_off"]["episodes"] == 0 for row in floor.values())
    passes = {(k, s) for k, row in floor.items() for s, c in row.items() if c["passed"]}
    assert passes == {("refuse", "declined")}
    for name in ("flywheel_vs_sft", "flywheel_vs_static"):
        d = on_disk["diff"][name]
        assert d["ci95"][0] <= d["mean"] <= d["ci95"][1] and d["n_tasks"] == 7
    goal = on_disk["goal"]
    # A random-weight model learns nothing: it cannot beat the refuse floor.
    assert goal["beats_refuse"]["met"] is False and goal["all_met"] is False
    assert {g for g in goal if g != "all_met"} == {
        "beats_sft",
        "no_kind_below_sft",
        "beats_refuse",
        "at_least_static",
    }
    md = (out / "study.md").read_text()
    for arm in ARMS:
        assert f"| {arm} |" in md
    assert "**not met**" in md and (out / "study_curves.png").stat().st_size > 0
    assert "## Why held-out episodes failed" in md
    assert "## What the agent did, by branch kind" in md
    rates = decline_rates(floor)
    cells = [f"{rates[s]['declined']} of {rates[s]['episodes']}" for s in ("to_decline", "to_do")]
    assert f"| refuse | {cells[0]} | {cells[1]} |" in md  # the floor's decline rates
    assert rates["to_decline"]["episodes"] + rates["to_do"]["episodes"] == 7
    assert len(on_disk["curves"]["rl_flywheel"]["evals"]) == 3  # the SFT start, two rounds
    # where each phase ran: this machine, in float32 (the tiny config), recorded once each
    assert set(on_disk["ran_on"]) == set(json.loads((out / "study_state.json").read_text())["done"])
    for phase, records in on_disk["ran_on"].items():
        assert len(records) == 1 and records[0]["cpu"] == on_disk["machine"]["cpu"]
        assert ("training" in records[0]["numerics"]) == (phase == "shared" or "arm:" in phase)
    assert on_disk["mixed_numerics"] is False
    assert "## Where it ran" in md and "- arm:rl_static: " in md


def test_phases_in_other_dtypes_are_called_mixed():
    fp32 = {"generation": "float32", "training": "float32"}
    bf16 = {"generation": "bfloat16", "training": "bfloat16"}
    records: list[dict] = []
    record_where_it_ran(records, fp32)
    record_where_it_ran(records, fp32)
    assert len(records) == 1  # the same machine computing the same way
    record_where_it_ran(records, bf16)
    assert [r["numerics"] for r in records] == [fp32, bf16]
    done = ["shared", "arm:rl_static"]
    assert mixed_numerics({"shared": records[:1], "arm:rl_static": records[:1]}, done) is False
    assert mixed_numerics({"shared": records[1:], "arm:rl_static": records[:1]}, done) is True
    # a phase finished before records were kept: unknown, unless the others already differ
    assert mixed_numerics({"arm:rl_static": records[:1]}, done) is None
    assert mixed_numerics({"arm:rl_static": records}, done) is True


def _numbers(result: dict) -> dict:
    """The arms' numbers and the differences (not where their checkpoints live)."""
    arms = {
        arm: {k: v for k, v in a.items() if k != "weights"} for arm, a in result["arms"].items()
    }
    return {"arms": arms, "diff": result["diff"]}


def test_a_killed_study_resumes_without_redoing_finished_arms(config, study, tmp_path):
    full, full_result = study

    class Interrupt(Exception):
        pass

    seen: list[str] = []

    def kill_in_the_second_arm(line: str) -> None:
        seen.append(line)
        if line == "== round-1:grpo" and seen.count(line) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_study(config, tmp_path, log=kill_in_the_second_arm)
    # the flywheel arm runs first (a study cut short has measured it)
    assert seen.index("== study: arm:rl_flywheel") < seen.index("== study: arm:rl_static")
    flywheel_metrics = (tmp_path / "arms" / "rl_flywheel" / "metrics.jsonl").read_bytes()
    logs: list[str] = []
    result = run_study(config, tmp_path, resume=True, log=logs.append)
    assert "== study: arm:rl_flywheel" not in logs and "== study: arm:rl_static" in logs
    assert (tmp_path / "arms" / "rl_flywheel" / "metrics.jsonl").read_bytes() == flywheel_metrics
    assert _numbers(result) == _numbers(full_result)
    # The interrupted arm continued exactly: its steps and evals are the uninterrupted ones.
    timing = {"step_s", "tokens_per_s"}
    for arm in RL_ARMS:
        resumed, uninterrupted = (
            [
                {k: v for k, v in m.items() if k not in timing}
                for m in read_metrics(d / "arms" / arm)
            ]
            for d in (tmp_path, full)
        )
        assert resumed == uninterrupted
    # A finished study resumed again runs nothing and rewrites the same results.
    again: list[str] = []
    assert run_study(config, tmp_path, resume=True, log=again.append)["arms"] == result["arms"]
    assert not any(line.startswith("== ") for line in again)


def test_missing_branch_kinds_stop_the_study_before_sft(config, tmp_path):
    data = config.data.model_copy(update={"tasks_per_workflow": 3})  # happy, clarify, refuse
    thin = config.model_copy(update={"data": data})
    with pytest.raises(MissingBranchKinds, match="transfer, adversarial"):
        run_study(thin, tmp_path, log=lambda _: None)
    assert not (tmp_path / "shared" / "checkpoints").exists()


def test_the_cli_says_what_is_wrong_in_one_line(tmp_path):
    require_bundled_gguf()
    runner = CliRunner()
    cases = {
        ("--set", "data.tasks_per_workflow=3"): "train pool has no transfer, adversarial tasks",
        ("--set", "data.held_out_seen_tasks=0"): "held_out_seen_tasks must be > 0",
        ("--set", "study.min_held_out_tasks=100"): "study.min_held_out_tasks = 100",
        ("--set", "rounds=[{kind: agentic}]"): "leave `rounds` empty",
    }
    for i, (args, message) in enumerate(cases.items()):
        out = tmp_path / str(i)
        result = runner.invoke(app, ["study", "--config", "study-tiny", "--out", str(out), *args])
        assert result.exit_code == 1, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in " ".join(result.output.split()), result.output


def test_the_shipped_study_asks_enough_of_the_data():
    config = load_study_config(STUDY)
    assert config.data.held_out_tasks + config.data.held_out_seen_tasks >= 150
    assert len(config.data.held_out_workflows) >= 2
    assert config.model.spec == "hf:default"
    assert config.model.generation.backend == "hf" and config.model.generation.dtype == "bfloat16"
    assert config.data.tasks_per_workflow >= len(BRANCH_KINDS)


def test_a_study_never_publishes_unless_asked(study):
    assert not PUBLISHED.exists() or "study-tiny" not in PUBLISHED.read_text()
