"""A round's RL steps on an external engine (verl on Ray) instead of our GRPO trainer.

The round's other phases are unchanged: evolve picks the band (or the pool) with our
flywheel, and after this phase come our held-out eval and the round report. Here:

    1. the job: the round's tasks, the held-out set, the policy to start from (a Hugging
       Face directory: the last round's or SFT's checkpoint, or the initial weights saved
       for it), the round's budget and the run's GRPO settings;
    2. the engine trains (its accelerator memory freed on our side first) and returns the
       weights after the round and one metrics dict per step;
    3. those weights become the run's policy: one metrics line per step, then
       `checkpoints/last` holding the run state (the commit point), then state.json, and
       the round's lasting copy `checkpoints/round-<r>`.

Resume: killed during 2, the engine continues from its own state in the round's
`<engine>/` directory; killed after the commit in 3, the weights are not imported again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentwheel.core.external_training import ExternalRoundJob, ExternalTrainer
from agentwheel.core.run_layout import MODEL_DIR, RoundLayout
from agentwheel.settings.rl_round import RLRound
from agentwheel.train.checkpoint import (
    TrainerState,
    crash_point,
    keep_weights,
    save_checkpoint,
)
from agentwheel.train.run_context import RunContext

BEFORE_RL = (None, "sft", "sft_done")  # state.checkpoint["trainer"] before any RL step


def run_external_round(
    run: RunContext, trainer: ExternalTrainer, round_: int, settings: RLRound
) -> None:
    """The round's `settings.steps` RL steps on `trainer`; the run's policy after it."""
    if _already_imported(run, trainer, round_):
        run.log(f"round {round_}: {trainer.name} weights already imported")
    else:
        job = round_job(run, trainer, round_, settings)
        run.log(f"round {round_}: {settings.steps} steps on {trainer.name} ({job.out_dir})")
        _free_accelerator(run)
        result = trainer.train_round(job)
        _restore_accelerator(run)
        if len(result.steps) != settings.steps:
            run.note(
                f"round {round_}: {trainer.name} reported {len(result.steps)} steps, "
                f"{settings.steps} asked"
            )
        _adopt(run, trainer, round_, settings, result.model_dir, result.steps)
    last = run.layout.last_checkpoint
    if run.config.keep_round_checkpoints and last.exists():
        keep_weights(last, run.layout.round_checkpoint(round_))


def round_job(
    run: RunContext, trainer: ExternalTrainer, round_: int, settings: RLRound
) -> ExternalRoundJob:
    """What the engine needs for round `round_`, from the run's config and files."""
    config = run.config
    files = run.layout.round(round_)
    return ExternalRoundJob(
        round=round_,
        tasks=files.tasks,
        held_out=run.layout.held_out_tasks,
        init_model=policy_model_dir(run, files),
        out_dir=files.engine(trainer.name),
        seed=config.seed,
        steps=settings.steps,
        groups_per_step=settings.batch_groups,
        rollouts_per_group=settings.group_size,
        max_attempts=settings.max_attempts,
        lr=config.grpo.lr,
        clip_low=config.grpo.clip_low,
        clip_high=config.grpo.clip_high,
        kl_coef=config.grpo.kl_coef,
        temperature=config.rollout.temperature,
        max_new_tokens=config.rollout.max_new_tokens,
        max_agent_turns=config.runner.max_agent_turns,
        max_episode_tokens=config.runner.max_episode_tokens,
        template_kwargs=dict(config.model.template_kwargs),
        wrong_stance_penalty=config.grpo.wrong_stance_penalty,
    )


def policy_model_dir(run: RunContext, files: RoundLayout) -> Path:
    """The current policy as a Hugging Face directory: the newest checkpoint's `model/`
    (a previous round's, SFT's, or `model.init_from`'s), or the initial weights saved
    into the round directory once."""
    last, sft = run.layout.last_checkpoint, run.layout.sft_checkpoint
    if run.state.checkpoint.get("trainer") not in BEFORE_RL and last.exists():
        return last / MODEL_DIR
    if sft.exists():
        return sft / MODEL_DIR
    if run.config.model.init_from is not None:
        return Path(run.config.model.init_from) / MODEL_DIR
    initial = files.initial_model
    if not (initial / "config.json").exists():
        run.policy.module.save_pretrained(initial)  # type: ignore[operator]
        run.policy.tokenizer().save_pretrained(initial)
    return initial


def _already_imported(run: RunContext, trainer: ExternalTrainer, round_: int) -> bool:
    pos = run.state.position
    return pos.get("stage") == trainer.name and pos.get("round") == round_


def _adopt(
    run: RunContext,
    trainer: ExternalTrainer,
    round_: int,
    settings: RLRound,
    model_dir: Path,
    steps: list[dict[str, float]],
) -> None:
    """The engine's weights as the run's policy, committed like a step of our own."""
    run.policy.adopt(model_dir)
    global_step = run.state.global_step
    for step, metrics in enumerate(steps, start=1):
        global_step += 1
        record: dict[str, Any] = {
            "stage": "grpo",
            "round": round_,
            "kind": settings.kind,
            "trainer": trainer.name,
            **metrics,
            "step": step,
            "global_step": global_step,
        }
        run.record(record, global_step)
    position: dict[str, Any] = {
        "stage": trainer.name,
        "round": round_,
        "step": len(steps),
        "global_step": global_step,
    }
    run.state.position = position
    run.state.checkpoint = {"trainer": trainer.name, "step": global_step}
    save_checkpoint(
        run.layout.last_checkpoint,
        run.policy.module,
        None,
        TrainerState(step=global_step, data_position=position),
        tokenizer=run.policy.tokenizer(),
        run_state=run.state.model_dump_json(indent=2),
        save_dtype=run.config.model.save_dtype,
    )
    crash_point("external:after_checkpoint")
    run.commit()
    if run.progress is not None:
        run.progress(f"{trainer.name} round {round_}", len(steps), settings.steps)


def _free_accelerator(run: RunContext) -> None:
    """The engine needs the GPUs: drop our generation engine and move the policy off."""
    if run.config.model.device != "cpu":
        run.policy.to("cpu")
    run.policy.generator.release()  # after the move, so its cache flush covers the policy too


def _restore_accelerator(run: RunContext) -> None:
    if run.config.model.device != "cpu":
        run.policy.to(run.config.model.device)
