"""The multi-round schedule on the tiny model: end to end, and exact resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentwheel.settings.config_file import apply_overrides
from agentwheel.settings.schedule import ScheduleConfig, load_config
from agentwheel.train.checkpoint import CRASH_POINT_ENV
from agentwheel.train.report import read_metrics, write_report
from agentwheel.train.schedule import run_schedule
from tests.train.conftest import require_bundled_gguf

TINY = Path(__file__).parents[2] / "agentwheel" / "configs" / "tiny.yaml"
# Wall-clock fields differ between any two runs; everything else must match exactly.
TIMING = {"step_s", "tokens_per_s"}


@pytest.fixture(scope="module")
def config() -> ScheduleConfig:
    require_bundled_gguf()
    return load_config(TINY)


@pytest.fixture(scope="module")
def full_run(config, tmp_path_factory) -> Path:
    import torch

    # Module fixtures start before the per-test one-thread fixture: match it, since the
    # resume test compares floats bit for bit.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("full")
    try:
        run_schedule(config, out, log=lambda _: None)
    finally:
        torch.set_num_threads(before)
    return out


def _comparable(metrics: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in TIMING} for m in metrics]


def test_two_round_tiny_schedule_runs_end_to_end(full_run):
    metrics = read_metrics(full_run)
    stages = [(m["stage"], m["round"]) for m in metrics]
    assert stages.count(("sft", 0)) == 2
    assert stages.count(("grpo", 1)) == stages.count(("grpo", 2)) == 2
    assert [m["eval"] for m in metrics if m["stage"] == "eval"] == [
        "base",
        "sft",
        "round-1",
        "round-2",
    ]
    assert [m["global_step"] for m in metrics if m["stage"] != "eval"] == list(range(1, 7))
    grpo = [m for m in metrics if m["stage"] == "grpo"]
    assert all(m["rollout_episodes"] == 4 and m["trained_tokens"] > 0 for m in grpo)
    for r in (1, 2):
        report = json.loads((full_run / "rounds" / f"round-{r}" / "report.json").read_text())
        assert report["steps"] == 2 and report["held_out_pass1_after"] is not None
        # A random-weight model solves nothing: the band is empty and the round says so.
        assert report["selection"]["tasks_source"].startswith("fallback")
    md = (full_run / "report.md").read_text()
    for row in ("| base |", "| after SFT |", "| after RL round-1 |", "| after RL round-2 |"):
        assert row in md
    state = json.loads((full_run / "state.json").read_text())
    assert state["done"][-1] == "report" and (full_run / "config.yaml").exists()
    assert (full_run / "checkpoints" / "last" / "trainer_state.pt").exists()
    # Held-out workflows never reach the train pool; the new tasks of the train
    # workflows share no request with it.
    train = (full_run / "data" / "train" / "tasks.jsonl").read_text()
    assert "clinic_reschedule" not in train
    from agentwheel.core.dataset import load_tasks

    pool = load_tasks(full_run / "data" / "train" / "tasks.jsonl").tasks
    held = load_tasks(full_run / "data" / "held_out" / "tasks.jsonl").tasks
    seen = [t for t in held if t.lineage.source_workflow != "clinic_reschedule"]
    assert len(held) == 4 and len(seen) == 2 and all(t.id.startswith("heldout.") for t in seen)
    assert not {t.user.request for t in seen} & {t.user.request for t in pool}
    base = next(m for m in metrics if m.get("eval") == "base")
    assert {"held_out_pass1_unseen_workflows", "held_out_pass1_seen_workflows"} <= set(base)
    assert "| unseen workflows |" in md


def test_the_runs_checkpoints_prompt_as_training_did(config, full_run):
    """A `configs/tiny.yaml` run trains with agentwheel's tool template, not SmolLM2's own:
    its saved tokenizer renders, id for id, what the policy was prompted with."""
    from transformers import AutoTokenizer

    from agentwheel.core.dataset import load_tasks
    from agentwheel.core.messages import Message
    from agentwheel.envs.user import ScriptedUser
    from agentwheel.train.model_factory import build_model

    policy = build_model(config.model, config.seed)
    task = load_tasks(full_run / "data" / "held_out" / "tasks.jsonl").tasks[0]
    messages = [
        Message(role="system", content=task.instruction),
        Message(role="user", content=ScriptedUser().opening(task)),
    ]
    tools = [t.openai_schema() for t in task.tools]
    for name in ("sft", "last"):
        saved = AutoTokenizer.from_pretrained(full_run / "checkpoints" / name / "model")
        ids = saved.apply_chat_template(
            [m.openai_dict() for m in messages],
            tools=tools,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
        assert ids == policy.renderer.initial_ids(messages, task.tools)
        assert "You are a helpful AI assistant named SmolLM" not in saved.chat_template


class Interrupt(Exception):
    pass


def test_interrupted_and_resumed_run_matches_the_uninterrupted_one(config, full_run, tmp_path):
    def stop_at(step: int):
        def hook(record: dict) -> None:
            if record["global_step"] == step:
                raise Interrupt

        return hook

    # Interrupted inside SFT, then inside GRPO round 1, then run to the end.
    for stop in (1, 3):
        with pytest.raises(Interrupt):
            run_schedule(
                config, tmp_path, resume=stop != 1, on_step=stop_at(stop), log=lambda _: None
            )
    run_schedule(config, tmp_path, resume=True, log=lambda _: None)
    assert _comparable(read_metrics(tmp_path)) == _comparable(read_metrics(full_run))
    assert (tmp_path / "report.md").exists()


def test_a_run_directory_is_not_overwritten_without_resume(config, full_run):
    with pytest.raises(FileExistsError):
        run_schedule(config, full_run, log=lambda _: None)


def test_config_overrides_and_validation():
    raw = {"data": {"held_out_workflows": ["a"]}, "rounds": [{"kind": "agentic"}]}
    config = ScheduleConfig.model_validate(
        apply_overrides(raw, ["grpo.lr=2e-6", "rounds.0.steps=7", "seed=3"])
    )
    assert config.grpo.lr == 2e-6 and config.rounds[0].steps == 7 and config.seed == 3
    with pytest.raises(ValueError, match="unknown GRPOConfig fields"):
        ScheduleConfig.model_validate({**raw, "grpo": {"lrr": 1}})
    with pytest.raises(ValueError, match="both trained on and held out"):
        ScheduleConfig.model_validate(
            {"data": {"held_out_workflows": ["a"], "train_workflows": ["a"]}}
        )
    with pytest.raises(ValueError):
        ScheduleConfig.model_validate({"data": {"held_out_workflows": []}})


def test_report_without_plots_says_so(full_run, tmp_path):
    md = write_report(full_run, plots=False).read_text()
    assert "No plots" in md


def test_report_says_when_a_run_is_too_small_to_show_an_rl_effect(full_run):
    md = write_report(full_run, plots=False).read_text()
    # The tiny run: 4 GRPO updates at most, 4 held-out tasks (one task = 25 points).
    assert "## Can this run show an RL effect?" in md
    assert "held-out set has 4 tasks (one task = 25 points)" in md
    assert "agentwheel study" in md
    from agentwheel.train.report import effect_size_note

    big = [{"updates": 12}], [{"held_out_tasks": 150}]
    assert effect_size_note(*big) == []


def test_lora_run_resumes_exactly(config, tmp_path):
    """LoRA adapters for SFT (merged into the base afterwards) and for GRPO, with a KL
    reference: interrupted inside each stage, the run still repeats the uninterrupted one."""
    import torch

    lora = config.model_validate(
        apply_overrides(
            config.model_dump(mode="json"),
            ["sft.train.lora={rank: 4}", "grpo.lora={rank: 4}", "grpo.kl_coef=0.1"],
        )
    )
    torch.manual_seed(0)
    run_schedule(lora, tmp_path / "full", log=lambda _: None)

    def stop_at(step: int):
        def hook(record: dict) -> None:
            if record["global_step"] == step:
                raise Interrupt

        return hook

    for stop in (1, 4):
        with pytest.raises(Interrupt):
            run_schedule(
                lora, tmp_path / "cut", resume=stop != 1, on_step=stop_at(stop), log=lambda _: None
            )
    run_schedule(lora, tmp_path / "cut", resume=True, log=lambda _: None)
    full, cut = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "cut")
    assert _comparable(cut) == _comparable(full)


def test_alternating_reasoning_and_agentic_rounds(config, tmp_path):
    """configs/tiny-alternating.yaml: reasoning → agentic → reasoning RL, end to end; each
    kind continues from its own previous round, and an interrupted reasoning round resumes
    to the same metrics."""
    import torch

    from agentwheel.envs.trajectory import Trajectory
    from agentwheel.flywheels.reasoning.reward import ReasoningReward
    from agentwheel.flywheels.reasoning.seeds import load_seed_file

    alternating = load_config(TINY.with_name("tiny-alternating.yaml"))
    torch.set_num_threads(1)
    full = tmp_path / "full"
    run_schedule(alternating, full, log=lambda _: None)
    metrics = read_metrics(full)
    assert [(m["round"], m["kind"]) for m in metrics if m["stage"] == "grpo"] == [
        (1, "reasoning"),
        (2, "agentic"),
        (3, "reasoning"),
    ]
    assert [m["eval"] for m in metrics if m["stage"] == "eval"] == [
        "base",
        "sft",
        "round-1",
        "round-2",
        "round-3",
    ]
    rounds = full / "rounds"
    selections = [json.loads((rounds / f"round-{r}/selection.json").read_text()) for r in (1, 2, 3)]
    seeds = load_seed_file(full / "reasoning" / "seeds" / "problems.jsonl").problems
    round1_pool = load_seed_file(rounds / "round-1" / "problem_pool.jsonl").problems
    # Round 1 starts from the seeds, round 3 from round 1's pool (not from round 2's
    # agentic tasks), round 2 from the synthesized train pool.
    assert selections[0]["pool_tasks"] == len(seeds) == 8
    assert selections[2]["pool_tasks"] == len(round1_pool)
    train_pool = (full / "data" / "train" / "tasks.jsonl").read_text().splitlines()
    assert selections[1]["pool_tasks"] == len(train_pool)
    # Reasoning rollouts: one answer per trajectory, graded by the verified reward.
    reward = ReasoningReward()
    by_id = {p.id: p for p in round1_pool}
    lines = (rounds / "round-1" / "rollouts" / "traces.jsonl").read_text().splitlines()
    assert len(lines) == 4
    for line in lines:
        t = Trajectory.model_validate_json(line)
        assert t.domain == "reasoning" and [m.role for m in t.messages] == ["user", "assistant"]
        answer = reward.breakdown(by_id[t.task_id], t.messages[1].content)
        assert t.passed == answer.correct
        assert sum(t.tokens.loss_mask) == t.counts.generated_tokens > 0
    # Interrupted inside the second reasoning round, resumed: the same run.
    cut = tmp_path / "cut"
    last = [m["global_step"] for m in metrics if m["stage"] == "grpo"][-1]

    def stop(record: dict) -> None:
        if record["global_step"] == last:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_schedule(alternating, cut, on_step=stop, log=lambda _: None)
    run_schedule(alternating, cut, resume=True, log=lambda _: None)
    assert _comparable(read_metrics(cut)) == _comparable(read_metrics(full))


# study*.yaml are study configs (agentwheel/study/config.py), checked in tests/study.
SCHEDULES = sorted(p for p in TINY.parent.glob("*.yaml") if not p.stem.startswith("study"))


@pytest.mark.parametrize("path", SCHEDULES, ids=lambda p: p.stem)
def test_shipped_configs_validate(path):
    config = load_config(path)
    assert config.rounds and config.data.held_out_workflows
    if path.stem.startswith("qwen3"):
        # The GPU recipes follow the paper: alternating kinds, 64 tasks x 16 rollouts, lr 1e-6.
        assert [r.kind for r in config.rounds][:2] == ["reasoning", "agentic"]
        assert config.grpo.lr == 1e-6
        assert all(r.batch_groups == 64 and r.group_size == 16 for r in config.rounds)


def test_metrics_go_to_jsonl_tensorboard_and_wandb(tmp_path, monkeypatch):
    import sys
    import types

    from agentwheel.train.metrics_log import MetricsLog

    logged: list[tuple[dict, int]] = []
    run = types.SimpleNamespace(
        log=lambda data, step: logged.append((data, step)), finish=lambda: None
    )
    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    log = MetricsLog(tmp_path, tensorboard=True, wandb_project="p")
    log.write({"stage": "grpo", "loss": 0.5, "updated": True, "note": "x"}, global_step=3)
    log.close()
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["loss"] == 0.5
    assert logged == [({"grpo/loss": 0.5}, 3)]
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_quick_demo_is_a_smaller_valid_demo():
    from agentwheel.cli.train import DEMO_CONFIG, QUICK_OVERRIDES

    demo, quick = load_config(DEMO_CONFIG), load_config(DEMO_CONFIG, QUICK_OVERRIDES)
    assert quick.model == demo.model and quick.data.held_out_workflows
    assert len(quick.rounds) < len(demo.rounds)
    assert quick.data.tasks_per_workflow < demo.data.tasks_per_workflow


def test_a_thin_learnable_band_is_topped_up_from_the_pool():
    import numpy as np

    from agentwheel.flywheels.agentic.expand import expand_workflows
    from agentwheel.train.rounds.agentic import band_topped_up

    pool, _, _ = expand_workflows(
        "agentwheel/data/workflows/retail_order_cancel.yaml", tasks_per_workflow=8
    )
    band = pool[:1]
    tasks, source = band_topped_up(band, pool, 4, np.random.default_rng(0))
    assert tasks[0] is band[0] and len(tasks) == 4
    assert len({t.id for t in tasks}) == 4  # no pool task twice, the band task not again
    assert source == "learnable band (1) topped up with 3 pool tasks"
    same, _ = band_topped_up(band, pool, 4, np.random.default_rng(0))
    assert [t.id for t in same] == [t.id for t in tasks]
    full, source = band_topped_up(pool[:5], pool, 4, np.random.default_rng(0))
    assert full == pool[:5] and source == "learnable band of evolved tasks"


KILLABLE_RUN = """
import sys
import torch
from agentwheel.train.schedule import run_schedule
from agentwheel.settings.schedule import load_config
torch.set_num_threads(1)
run_schedule(load_config(sys.argv[1]), sys.argv[2], resume=sys.argv[3] == "resume", log=lambda _: None)
"""


def run_killable(
    run_dir: Path, resume: bool, crash_at: str | None = None, config: Path = TINY
) -> int:
    env = {k: v for k, v in os.environ.items() if k != CRASH_POINT_ENV}
    if crash_at:
        env[CRASH_POINT_ENV] = crash_at
    args = [sys.executable, "-c", KILLABLE_RUN, str(config), str(run_dir)]
    done = subprocess.run(
        [*args, "resume" if resume else "fresh"], env=env, capture_output=True, text=True
    )
    assert done.returncode in (0, -9), done.stderr[-3000:]
    return done.returncode


# Where each successive process is SIGKILLed (the first pass of that point in it): the
# tiny run checkpoints after SFT steps 1-2, as checkpoints/sft, after GRPO steps r1s1-r2s2.
KILL_POINTS = [
    "step:after_checkpoint",  # SFT step 1 in its checkpoint, state.json not yet updated
    "checkpoint:between_renames",  # SFT step 2: step 1 moved aside, step 2 not yet in place
    "checkpoint:before_complete",  # inside the final SFT checkpoint
    # GRPO round 1 step 2 in its checkpoint, state.json still at step 1: resuming from
    # state.json alone would apply step 2's update twice
    "step:after_checkpoint@2",
    "checkpoint:after_rename",  # GRPO round 2 step 1, renamed in, the old one still beside
    "checkpoint:between_renames",  # GRPO round 2 step 2
]


@pytest.mark.slow
def test_a_run_killed_anywhere_resumes_to_the_uninterrupted_metrics(config, full_run, tmp_path):
    """SIGKILL a tiny run at each point (several per run, resuming in between), including
    inside the checkpoint commit and between a checkpoint and state.json: the metrics of
    the finished run equal the uninterrupted run's exactly."""
    run_dir = tmp_path / "run"
    kills = 0
    for i, point in enumerate(KILL_POINTS):
        kills += run_killable(run_dir, resume=i > 0, crash_at=point) == -9
    assert run_killable(run_dir, resume=True) == 0
    assert kills == len(KILL_POINTS)
    assert _comparable(read_metrics(run_dir)) == _comparable(read_metrics(full_run))
    leftovers = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.slow
def test_steps_left_uncommitted_between_checkpoints_are_redone_to_the_same_metrics(
    full_run, tmp_path
):
    """With `checkpoint_every_s` longer than the run, only each phase's last step is
    checkpointed (SFT 2 of 2, each round's step 2 of 2). Killed inside the uncommitted SFT
    step 1 and the first steps of GRPO rounds 1 and 2, resumed each time: the same metrics
    as the uninterrupted run that checkpointed every step."""
    config = tmp_path / "tiny_sparse.yaml"
    config.write_text(TINY.read_text() + "\ncheckpoint_every_s: 3600\n")
    run_dir = tmp_path / "run"
    assert run_killable(run_dir, False, "step:uncommitted", config) == -9  # SFT step 1
    assert json.loads((run_dir / "state.json").read_text())["checkpoint"] == {}
    assert not (run_dir / "checkpoints" / "last").exists()
    # SFT step 1 again (pass 1), step 2 committed; GRPO round 1 step 1 (pass 2)
    assert run_killable(run_dir, True, "step:uncommitted@2", config) == -9
    state = json.loads((run_dir / "state.json").read_text())
    assert "sft" in state["done"] and state["position"].get("stage") != "grpo"
    # round 1 step 1 again (pass 1), step 2 committed; round 2 step 1 (pass 2)
    assert run_killable(run_dir, True, "step:uncommitted@2", config) == -9
    assert json.loads((run_dir / "state.json").read_text())["position"]["round"] == 1
    assert run_killable(run_dir, True, config=config) == 0
    assert _comparable(read_metrics(run_dir)) == _comparable(read_metrics(full_run))


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(config, full_run, tmp_path):
    run_dir = tmp_path / "run"
    assert run_killable(run_dir, resume=False, crash_at="step:after_checkpoint@4") == -9
    weights = run_dir / "checkpoints" / "last" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a disk that filled up, say
    assert run_killable(run_dir, resume=True) == 0
    assert _comparable(read_metrics(run_dir)) == _comparable(read_metrics(full_run))
    state = json.loads((run_dir / "state.json").read_text())
    assert any("resuming from the checkpoint before it" in n for n in state["notes"])
    assert (run_dir / "checkpoints" / "last.damaged").exists()


def resume_cli(run_dir: Path):
    from typer.testing import CliRunner

    from agentwheel.cli import app

    return CliRunner().invoke(
        app, ["train", "--config", str(TINY), "--out", str(run_dir), "--resume"]
    )


def test_a_truncated_state_json_resumes_from_the_checkpoints_run_state_or_is_an_error(
    full_run, tmp_path
):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(full_run, run_dir)
    state = run_dir / "state.json"
    state.write_text(state.read_text()[:40])
    result = resume_cli(run_dir)
    assert result.exit_code == 0, result.output
    notes = json.loads(state.read_text())["notes"]
    assert any("state.json is damaged" in n and "with the checkpoint" in n for n in notes)
    state.write_text(state.read_text()[:40])
    (run_dir / "checkpoints" / "last" / "run_state.json").unlink()
    result = resume_cli(run_dir)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    text = " ".join(result.output.split())
    assert "error:" in text and "state.json is damaged" in text and "no checkpoint" in text


def test_a_truncated_run_state_in_the_checkpoint_resumes_from_state_json(full_run, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(full_run, run_dir)
    saved = run_dir / "checkpoints" / "last" / "run_state.json"
    saved.write_text(saved.read_text()[:40])
    result = resume_cli(run_dir)
    assert result.exit_code == 0, result.output
    text = "".join(result.output.split())  # the note may wrap anywhere
    assert "run_state.jsonisdamaged" in text and "resumingfromstate.json" in text
