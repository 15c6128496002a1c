"""The study's config: a schedule config (model, data, SFT, GRPO, rollouts, evals) plus a
`study:` section with the RL budget every arm gets and what the study measures.

From it come the schedule configs of the runs the study is made of: `shared` (data, the
base eval, SFT, the SFT eval) and one per RL arm, each starting from the shared SFT
checkpoint on the shared data with the same rounds, the flywheel on or off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentwheel.core.run_layout import RunLayout
from agentwheel.core.task import BRANCH_KINDS
from agentwheel.core.yaml_text import load_yaml
from agentwheel.settings.agentic_round import AgenticRound
from agentwheel.settings.config_file import apply_overrides
from agentwheel.settings.sampling import SAMPLED_EVAL_TEMPERATURE
from agentwheel.settings.schedule import ScheduleConfig

RLArm = Literal["rl_static", "rl_flywheel"]
RL_ARMS: tuple[RLArm, ...] = ("rl_static", "rl_flywheel")
ARMS = ("refuse", "base", "sft", *RL_ARMS)
PASS_K = 4  # the sampled eval's trials per task: pass^4


class StudyConfigError(ValueError):
    """A study config that cannot answer the study's question (too few held-out tasks, a
    schedule setting the study owns)."""


class StudySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(2, ge=1, description="RL rounds in each arm.")
    round: AgenticRound = Field(
        default_factory=lambda: AgenticRound(kind="agentic"),
        description="Every round's settings, the same in both arms (the RL budget is "
        "rounds × steps × batch_groups × group_size); rl_static runs them with evolve: false.",
    )
    rl_seed: int | None = Field(
        None,
        ge=0,
        description="Seed of the RL arms (rollout sampling, batch draws, evolution); None = "
        "the study's `seed`. Another value on the same shared phase (--shared-from) is a "
        "second training draw of both arms: how far arms move apart by chance alone.",
    )
    min_held_out_tasks: int = Field(150, ge=1, description="Fewer held-out tasks is an error.")
    min_held_out_workflows: int = Field(
        2, ge=1, description="Fewer whole workflows never trained on is an error."
    )
    sampled_temperature: float = Field(
        SAMPLED_EVAL_TEMPERATURE, gt=0, description="Temperature of the sampled pass^4 eval."
    )
    sampled_tasks: int | None = Field(
        None,
        ge=1,
        description="Held-out tasks in the sampled pass^4 eval: a fixed subset spread over "
        "branch kinds (4 episodes each); None = all.",
    )
    train_pool_tasks: int = Field(
        30, ge=1, description="Train-pool tasks evaluated greedy per arm (a fixed subset)."
    )
    bootstrap_resamples: int = Field(10_000, ge=100, description="Bootstrap draws per interval.")
    goal_margin: float = Field(
        0.10, ge=0, description="The points of pass^1 the goals ask rl_flywheel to win by."
    )


class StudyConfig(ScheduleConfig):
    """A schedule config whose `rounds` stay empty: the study builds each arm's rounds
    from `study.round`."""

    study: StudySettings = Field(default_factory=StudySettings)

    @model_validator(mode="after")
    def _answers_the_question(self) -> StudyConfig:
        problems = study_config_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def schedule(self) -> ScheduleConfig:
        """The schedule settings without the study section."""
        return ScheduleConfig.model_validate(self.model_dump(exclude={"study"}))


def study_config_problems(config: StudyConfig) -> list[str]:
    """What makes a study config unable to answer its question, one line each."""
    study, data = config.study, config.data
    problems = []
    if config.rounds:
        problems.append("leave `rounds` empty: each arm's rounds come from study.round")
    if config.eval.k != 1 or config.eval.temperature != 0:
        problems.append(
            "eval must be greedy pass^1 (eval.k: 1, eval.temperature: 0): every stage is "
            "compared on it; the sampled eval is study.sampled_temperature"
        )
    if not config.sft.enabled:
        problems.append("sft.enabled must be true: the arms start from the SFT checkpoint")
    held_out = data.held_out_tasks + data.held_out_seen_tasks
    if held_out < study.min_held_out_tasks:
        problems.append(
            f"held-out tasks: data.held_out_tasks + data.held_out_seen_tasks = {held_out} < "
            f"study.min_held_out_tasks = {study.min_held_out_tasks}"
        )
    if len(data.held_out_workflows) < study.min_held_out_workflows:
        problems.append(
            f"{len(data.held_out_workflows)} held-out workflows < "
            f"study.min_held_out_workflows = {study.min_held_out_workflows}"
        )
    if data.held_out_seen_tasks == 0:
        problems.append("data.held_out_seen_tasks must be > 0 (new tasks of the train workflows)")
    return problems


def load_study_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> StudyConfig:
    raw = load_yaml(Path(path).read_text()) or {}
    return StudyConfig.model_validate(apply_overrides(raw, overrides))


def shared_config(config: StudyConfig) -> ScheduleConfig:
    """Data (every branch kind required in the train pool and the held-out set), the base
    eval, SFT and the SFT eval; no RL round."""
    schedule = config.schedule()
    data = schedule.data.model_copy(update={"require_branch_kinds": list(BRANCH_KINDS)})
    return schedule.model_copy(update={"name": f"{config.name}-shared", "data": data})


def arm_config(config: StudyConfig, arm: RLArm, shared_dir: Path) -> ScheduleConfig:
    """One RL arm: the shared data and SFT weights, no SFT of its own, `study.rounds`
    rounds of `study.round` with the flywheel on (rl_flywheel) or off (rl_static), a
    checkpoint kept after every round."""
    schedule = config.schedule()
    settings: dict[str, Any] = {"evolve": arm == "rl_flywheel"}
    rounds = [config.study.round.model_copy(update=settings) for _ in range(config.study.rounds)]
    rl_seed = config.seed if config.study.rl_seed is None else config.study.rl_seed
    return schedule.model_copy(
        update={
            "name": f"{config.name}-{arm}",
            "seed": rl_seed,
            **shared_paths(schedule, shared_dir),
            "sft": schedule.sft.model_copy(update={"enabled": False}),
            "rounds": rounds,
            "keep_round_checkpoints": True,
        }
    )


def shared_paths(schedule: ScheduleConfig, shared_dir: Path) -> dict[str, Any]:
    """An arm's `data` and `model` settings pointed at the shared phase in `shared_dir`:
    its data (with every branch kind required) and its SFT weights."""
    shared = RunLayout(shared_dir.resolve())
    return {
        "data": schedule.data.model_copy(
            update={"reuse_from": str(shared.data), "require_branch_kinds": list(BRANCH_KINDS)}
        ),
        "model": schedule.model.model_copy(update={"init_from": str(shared.sft_checkpoint)}),
    }


def relocated_arm_config(saved: ScheduleConfig, shared_dir: Path) -> ScheduleConfig:
    """A started arm's saved config with its shared paths at `shared_dir`: a study restored
    from its portable copy, or moved, lives elsewhere than where its arms began."""
    return saved.model_copy(update=shared_paths(saved, shared_dir))
