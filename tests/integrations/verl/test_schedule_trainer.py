"""verl as the schedule's trainer back-end: the round's command, and a round run through
a stand-in for verl's trainer process (stand_in_main_ppo.py; verl itself needs GPUs), with
a kill in the middle and the resume after it."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agentwheel.core.dataset import write_tasks
from agentwheel.core.external_training import ExternalRoundJob
from agentwheel.core.run_layout import EngineRoundLayout
from agentwheel.integrations.verl.schedule_trainer import (
    VerlRoundFailed,
    VerlTrainer,
)
from tests.envs.sample_tasks import ALL_KINDS, make_task
from tests.integrations.verl.stand_in_main_ppo import DELTA

REPO = Path(__file__).parents[3]
STAND_IN = "tests.integrations.verl.stand_in_main_ppo"


def overrides(command: list[str]) -> dict[str, str]:
    return dict(item.lstrip("+").split("=", 1) for item in command[3:])


@pytest.fixture
def job(tmp_path, tiny_model, tokenizer) -> ExternalRoundJob:
    tasks = [make_task(kind) for kind in ALL_KINDS]
    write_tasks(tasks, tmp_path / "tasks.jsonl")
    write_tasks(tasks[:2], tmp_path / "held_out.jsonl")
    init = tmp_path / "init"
    tiny_model.save_pretrained(init)
    tokenizer.save_pretrained(init)
    return ExternalRoundJob(
        round=2,
        tasks=tmp_path / "tasks.jsonl",
        held_out=tmp_path / "held_out.jsonl",
        init_model=init,
        out_dir=tmp_path / "round-2" / "verl",
        seed=7,
        steps=3,
        groups_per_step=5,
        rollouts_per_group=4,
        max_attempts=2,
        lr=1e-5,
        clip_low=0.2,
        clip_high=0.28,
        kl_coef=0.0,
        temperature=1.0,
        max_new_tokens=64,
        max_agent_turns=5,
        max_episode_tokens=3072,
        template_kwargs={"enable_thinking": True},
        wrong_stance_penalty=0.5,
    )


@pytest.fixture
def stand_in(monkeypatch) -> VerlTrainer:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return VerlTrainer(
        preset="qwen3-1.7b",
        python=sys.executable,
        entrypoint=STAND_IN,
        gpus_per_node=1,
        save_every=1,
        log=lambda _: None,
    )


def test_the_round_command_carries_the_rounds_budget_and_our_settings(job, stand_in):
    command = stand_in.command(job)
    assert command[:3] == [sys.executable, "-m", STAND_IN]
    got = overrides(command)
    assert got["actor_rollout_ref.model.path"] == str(job.init_model.resolve())
    assert got["trainer.total_training_steps"] == "3"
    assert got["data.train_batch_size"] == "5"
    assert got["actor_rollout_ref.rollout.n"] == "4"
    assert got["actor_rollout_ref.actor.optim.lr"] == "1e-05"
    assert got["actor_rollout_ref.actor.clip_ratio_high"] == "0.28"
    assert got["algorithm.filter_groups.max_num_gen_batches"] == "2"
    assert got["trainer.save_freq"] == "1"  # save_every, capped at the round's steps
    assert "hf_model" in got["actor_rollout_ref.actor.checkpoint.save_contents"]
    assert got["trainer.default_local_dir"] == str((job.out_dir / "checkpoints").resolve())
    assert got["data.apply_chat_template_kwargs.enable_thinking"] == "true"  # the run's wins
    # The round's loop config has the run's turn and token limits.
    loop = Path(got["actor_rollout_ref.rollout.agent.agent_loop_config_path"])
    assert loop.parent == job.out_dir.resolve()
    assert "max_agent_turns: 5" in loop.read_text() and "max_new_tokens: 64" in loop.read_text()
    assert "wrong_stance_penalty: 0.5" in loop.read_text()  # the loop's training reward
    # The last of repeated keys wins in hydra: the round's settings come after the preset's.
    keys = [item.lstrip("+").split("=", 1)[0] for item in command[3:]]
    last_lr = max(i for i, k in enumerate(keys) if k == "actor_rollout_ref.actor.optim.lr")
    assert command[3 + last_lr].endswith("=1e-05")


def test_a_kl_penalty_turns_on_verls_kl_loss(job, stand_in):
    got = overrides(stand_in.command(replace(job, kl_coef=0.05)))
    assert got["actor_rollout_ref.actor.use_kl_loss"] == "true"
    assert got["actor_rollout_ref.actor.kl_loss_coef"] == "0.05"


def test_a_round_killed_inside_verl_resumes_from_verls_checkpoint(job, stand_in, monkeypatch):
    monkeypatch.setenv("STAND_IN_VERL_KILL_AT", "2")
    with pytest.raises(VerlRoundFailed, match=r"code -9 in round 2 \(launch 1\).*--resume"):
        stand_in.train_round(job)
    assert (job.out_dir / "checkpoints" / "global_step_1").exists()
    assert not EngineRoundLayout(job.out_dir).final_model(3).exists()

    monkeypatch.delenv("STAND_IN_VERL_KILL_AT")
    result = stand_in.train_round(job)
    assert result.model_dir == EngineRoundLayout(job.out_dir).final_model(3)
    # Steps 1..3 applied once each (0.001 x (1 + 2 + 3)), across the two launches.
    before = load_file(next(job.init_model.glob("*.safetensors")))
    after = load_file(result.model_dir / "model.safetensors")
    name = "model.norm.weight"
    assert torch.allclose(after[name], before[name] + DELTA * 6, atol=1e-6)
    # Per-step metrics in our names, step 1 from the first launch, 2-3 from the second.
    assert [m["rollout_reward_mean"] for m in result.steps] == pytest.approx([0.1, 0.2, 0.3])
    assert [m["agentwheel/passed"] for m in result.steps] == pytest.approx([0.1, 0.2, 0.3])
    assert all("timing_s/gen" not in m for m in result.steps)
    log = (job.out_dir / "verl.log").read_text()
    assert "steps 1..3" in log and "steps 2..3" in log

    # Asked again (a resume after the round's weights were on disk): verl is not started.
    monkeypatch.setenv("STAND_IN_VERL_KILL_AT", "1")
    assert stand_in.train_round(job).steps == result.steps


def test_a_round_without_the_final_weights_is_an_error(job, stand_in):
    stand_in.overrides = ["trainer.total_training_steps=2"]  # verl stops short of the round
    with pytest.raises(VerlRoundFailed, match=r"without .*global_step_3"):
        stand_in.train_round(job)


def test_an_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown verl preset 'qwen9'"):
        VerlTrainer(preset="qwen9")


def test_verl_accepts_every_override_of_a_round_command(job, stand_in):
    """verl's own hydra config composes with the round's command (unknown keys, a
    misspelled section or a repeated key that hydra refuses would fail here); runs where
    verl is installed (make verl-check)."""
    pytest.importorskip("verl", reason="needs the verl extra (make verl-env)")
    import verl
    from hydra import compose, initialize_config_dir

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        config = compose(config_name="ppo_trainer", overrides=stand_in.command(job)[3:])
    assert config.actor_rollout_ref.actor.optim.lr == pytest.approx(1e-5)
    assert config.actor_rollout_ref.rollout.n == 4
    assert config.data.train_batch_size == 5
    assert config.trainer.total_training_steps == 3
    assert "hf_model" in config.actor_rollout_ref.actor.checkpoint.save_contents
    assert list(config.trainer.logger) == ["console", "file"]
    assert config.algorithm.filter_groups.enable is True
    assert config.actor_rollout_ref.model.path == str(job.init_model.resolve())
    assert config.data.apply_chat_template_kwargs.enable_thinking is True


def test_the_cli_says_how_to_get_verl_when_its_python_is_missing(tmp_path):
    from typer.testing import CliRunner

    from agentwheel.cli import app

    result = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            "tiny",
            "--out",
            str(tmp_path / "run"),
            "--set",
            "trainer.backend=verl",
            "--set",
            f"trainer.verl.python={tmp_path}/no-venv/bin/python",
        ],
    )
    assert result.exit_code == 1
    assert "does not exist: create verl's virtualenv with `make verl-env`" in " ".join(
        result.output.split()
    )
    assert not (tmp_path / "run" / "state.json").exists()
