"""verl as the multi-round schedule's trainer back-end: one verl run per round.

`VerlTrainer.train_round` turns an `ExternalRoundJob` into a verl PPO/GRPO run on Ray
(the folder's names: `EngineRoundLayout` in core/run_layout.py):

    <out_dir>/data/{train,val}.parquet   the round's tasks and the held-out set, our verl export
    <out_dir>/agent_loops.yaml           our loop's registry entry with the run's turn limits
    <out_dir>/checkpoints/               verl's own checkpoints (trainer.default_local_dir);
                                         the last one also as a Hugging Face model
                                         (global_step_<K>/actor/huggingface)
    <out_dir>/metrics-<launch>.jsonl     verl's file logger, one file per launch
    <out_dir>/verl.log                   verl's output, appended to by every launch

The command is `launch.verl_ppo_command` (the preset, our loop and reward) with the round's
budget and the run's GRPO settings on top. A rerun of the same job after a kill starts
verl again with `trainer.resume_mode=auto`, which continues from its latest checkpoint; a
round whose final Hugging Face model is on disk is not run again.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from agentwheel.core.dataset import load_tasks
from agentwheel.core.external_training import (
    ExternalRoundJob,
    ExternalRoundResult,
    ExternalTrainingFailed,
)
from agentwheel.core.run_layout import EngineRoundLayout
from agentwheel.core.yaml_text import load_yaml
from agentwheel.export.datasets import export_verl
from agentwheel.integrations.verl.launch import PRESETS, verl_ppo_command
from agentwheel.integrations.verl.verl_config import LOOP_CONFIG

METRIC_NAMES = {
    "critic/score/mean": "rollout_reward_mean",
    "actor/entropy": "entropy",
    "actor/pg_clipfrac": "clip_fraction",
    "actor/ppo_kl": "approx_kl",
    "actor/grad_norm": "grad_norm",
    "actor/pg_loss": "loss",
    "response_length/mean": "response_tokens_mean",
    "timing_s/step": "step_s",
    "train/num_gen_batches": "rollout_attempts",
}
"""verl's metric names → ours (the rest of verl's numbers are in its metrics files)."""

OWN_PREFIX = "agentwheel/"  # our loop's metrics (reward components), kept as they are


class VerlRoundFailed(ExternalTrainingFailed):
    """verl exited with an error, or finished without the weights of the round."""


@dataclass
class VerlTrainer:
    """One verl run per round, started with `python -m <entrypoint>` as a subprocess."""

    preset: str = "qwen3-1.7b"
    python: str = ".venv-verl/bin/python"
    entrypoint: str = "verl.trainer.main_ppo"
    nodes: int = 1
    gpus_per_node: int = 8
    ray_address: str | None = None
    save_every: int = 10
    overrides: list[str] = field(default_factory=list)
    log: Callable[[str], None] = print
    name: str = "verl"

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(
                f"unknown verl preset {self.preset!r}: use one of {', '.join(PRESETS)}"
            )

    def train_round(self, job: ExternalRoundJob) -> ExternalRoundResult:
        files = EngineRoundLayout(Path(job.out_dir))
        model_dir = files.final_model(job.steps)
        if not _has_weights(model_dir):
            command = self.command(job)
            launch = len(files.metrics_files()) + 1
            self._run(command, files, launch, job.round)
            if not _has_weights(model_dir):
                raise VerlRoundFailed(
                    f"verl finished round {job.round} without {model_dir}: its checkpoint "
                    "config must save the Hugging Face model (save_contents with hf_model) "
                    f"at step {job.steps}"
                )
        return ExternalRoundResult(model_dir=model_dir, steps=read_step_metrics(files, job.steps))

    def command(self, job: ExternalRoundJob) -> list[str]:
        """The verl command for the round (its data and loop config written first)."""
        files = EngineRoundLayout(Path(job.out_dir))
        train, val = files.train_data, files.val_data
        export_verl(load_tasks(job.tasks).tasks, train, split="train")
        export_verl(load_tasks(job.held_out).tasks, val, split="val")
        loop_config = write_loop_config(files.loop_config, job)
        return verl_ppo_command(
            self.preset,
            train,
            val,
            files.checkpoints,
            model=str(Path(job.init_model).resolve()),
            steps=job.steps,
            nodes=self.nodes,
            gpus_per_node=self.gpus_per_node,
            ray_address=self.ray_address,
            agent_loop_config=loop_config,
            extra=(*round_overrides(job, self.save_every), *self.overrides),
            python=self.python,
            entrypoint=self.entrypoint,
        )

    def _run(self, command: list[str], files: EngineRoundLayout, launch: int, round_: int) -> None:
        env = {**os.environ, "VERL_FILE_LOGGER_PATH": str(files.metrics(launch))}
        log_path = files.log
        self.log(f"verl round {round_} (launch {launch}), output in {log_path}")
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"\n== launch {launch}: {' '.join(command)}\n")
            log.flush()
            code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        if code != 0:
            lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            self.log("\n".join(["verl's last lines:", *lines[-20:]]))
            raise VerlRoundFailed(
                f"verl exited with code {code} in round {round_} (launch {launch}), output in "
                f"{log_path}; rerun with --resume to continue from its last checkpoint"
            )


def round_overrides(job: ExternalRoundJob, save_every: int) -> list[str]:
    """The round's budget, the run's GRPO settings and chat-template keywords as verl
    overrides; verl checkpoints every `save_every` steps (what a killed round resumes from)
    and after the last."""
    overrides = [
        f"data.train_batch_size={job.groups_per_step}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={job.groups_per_step}",
        f"actor_rollout_ref.rollout.n={job.rollouts_per_group}",
        f"algorithm.filter_groups.max_num_gen_batches={job.max_attempts}",
        f"actor_rollout_ref.actor.optim.lr={job.lr}",
        f"actor_rollout_ref.actor.clip_ratio_low={job.clip_low}",
        f"actor_rollout_ref.actor.clip_ratio_high={job.clip_high}",
        f"actor_rollout_ref.rollout.temperature={job.temperature}",
        f"actor_rollout_ref.rollout.response_length={job.max_episode_tokens}",
        f"data.max_response_length={job.max_episode_tokens}",
        f"data.seed={job.seed}",
        f"trainer.save_freq={min(save_every, job.steps)}",
        "trainer.test_freq=-1",
        "trainer.val_before_train=false",
        "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
        "trainer.logger=[console,file]",
        f"trainer.experiment_name=round-{job.round}",
    ]
    # `++` adds or replaces (the preset already sets enable_thinking).
    overrides += [
        f"++data.apply_chat_template_kwargs.{name}={json.dumps(value)}"
        for name, value in job.template_kwargs.items()
    ]
    if job.kl_coef > 0:
        overrides += [
            "actor_rollout_ref.actor.use_kl_loss=true",
            f"actor_rollout_ref.actor.kl_loss_coef={job.kl_coef}",
        ]
    return overrides


def write_loop_config(path: Path, job: ExternalRoundJob) -> Path:
    """Our loop's registry entry with the run's turn and token limits and its training
    reward's wrong-stance penalty."""
    entries = load_yaml(LOOP_CONFIG.read_text())
    for entry in entries:
        entry["max_agent_turns"] = job.max_agent_turns
        entry["max_new_tokens"] = job.max_new_tokens
        entry["wrong_stance_penalty"] = job.wrong_stance_penalty
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(entries, sort_keys=False))
    return path


def _has_weights(model_dir: Path) -> bool:
    return model_dir.is_dir() and any(model_dir.glob("*.safetensors"))


def read_step_metrics(files: EngineRoundLayout, steps: int) -> list[dict[str, float]]:
    """One dict per step 1..steps from verl's metrics files (a later launch's line for a
    step replaces an earlier one), in our names where we have one."""
    by_step: dict[int, dict[str, float]] = {}
    for file in files.metrics_files():
        for line in file.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            by_step[int(entry["step"])] = _ours(entry["data"])
    return [by_step.get(step, {}) for step in range(1, steps + 1)]


def _ours(data: dict[str, object]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for key, value in data.items():
        if not isinstance(value, int | float):
            continue
        if key in METRIC_NAMES:
            metrics[METRIC_NAMES[key]] = float(value)
        elif key.startswith(OWN_PREFIX):
            metrics[key] = float(value)
    return metrics
