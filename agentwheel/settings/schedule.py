"""A training schedule's config: one settings model per section, loaded from YAML,
overridable on the CLI (`--set grpo.lr=2e-6`), printed at the start of a run and saved in
its directory (config.yaml).

Unknown keys are rejected at every level. A round's settings are the model of its kind
(`kind: agentic | reasoning | ...`, agentwheel/settings/rounds.py).

One key per knob: the rollouts' temperature is `rollout.temperature` (GRPO's log-probs are
taken at it). Configs saved before that carry `grpo.temperature` too; it is dropped when it
equals `rollout.temperature` and an error naming both keys when it does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, SerializeAsAny, field_validator, model_validator

from agentwheel.core.yaml_text import load_yaml
from agentwheel.settings.config_file import apply_overrides, resolve_extends
from agentwheel.settings.data import DataSettings
from agentwheel.settings.external import TrainerSettings
from agentwheel.settings.model import ModelSettings
from agentwheel.settings.rl_round import RLRound
from agentwheel.settings.rounds import parse_rounds
from agentwheel.settings.runner import RunnerSettings
from agentwheel.settings.sampling import EvalSettings, SamplingSettings
from agentwheel.settings.sft import SFTSettings
from agentwheel.settings.strict import Strict, reject_unknown_fields
from agentwheel.settings.trainer import GRPOConfig

LEGACY_GRPO_TEMPERATURE = "temperature"
"""The key of `grpo:` that configs saved before `rollout.temperature` owned it carry."""


def without_legacy_temperature(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` without `grpo.temperature`: it must equal `rollout.temperature` (its default
    when absent), the one key the rollouts and GRPO's log-probs share."""
    grpo = raw.get("grpo")
    if not isinstance(grpo, dict) or LEGACY_GRPO_TEMPERATURE not in grpo:
        return raw
    rollout = raw.get("rollout")
    default = SamplingSettings.model_fields["temperature"].default
    rollout_t = rollout.get("temperature", default) if isinstance(rollout, dict) else default
    grpo_t = grpo[LEGACY_GRPO_TEMPERATURE]
    if grpo_t != rollout_t:
        raise ValueError(
            f"grpo.temperature ({grpo_t}) differs from rollout.temperature ({rollout_t}): "
            "they are one knob now; set rollout.temperature and drop grpo.temperature"
        )
    rest = {k: v for k, v in grpo.items() if k != LEGACY_GRPO_TEMPERATURE}
    return {**raw, "grpo": rest}


class ScheduleConfig(Strict):
    name: str = "run"
    seed: int = Field(0, ge=0, description="Run seed (data, rollouts, trainers).")
    model: ModelSettings = Field(default_factory=ModelSettings)
    data: DataSettings
    sft: SFTSettings = Field(default_factory=SFTSettings)
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)
    rollout: SamplingSettings = Field(default_factory=SamplingSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    # SerializeAsAny: dump each round with the fields of its kind, not only RLRound's.
    rounds: list[SerializeAsAny[RLRound]] = Field(
        default_factory=list, description="RL rounds in order; each names its `kind`."
    )
    eval: EvalSettings = Field(default_factory=EvalSettings)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
    tensorboard: bool = Field(True, description="Also log to TensorBoard when installed.")
    wandb_project: str | None = Field(
        None, description="Also log to this Weights & Biases project (needs `wandb` installed)."
    )
    plots: bool = Field(True, description="Write PNG plots when matplotlib is installed.")
    checkpoint_every_s: float = Field(
        0.0,
        ge=0,
        description="Least seconds between step checkpoints (0: after every step). A phase's "
        "last step is always checkpointed; a run stopped in between resumes from the last "
        "checkpoint and redoes the steps since, the same steps (seeds and data order are "
        "positions). Saves writing weights and optimizer state at every short step.",
    )
    keep_round_checkpoints: bool = Field(
        True,
        description="Keep the weights after each round as checkpoints/round-<r> (hard links "
        "to the round's last checkpoint, without its optimizer state).",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_temperature(cls, value: Any) -> Any:
        return without_legacy_temperature(value) if isinstance(value, dict) else value

    @field_validator("grpo", mode="before")
    @classmethod
    def _known_grpo_fields(cls, value: Any) -> Any:
        return reject_unknown_fields(GRPOConfig, value)

    @field_validator("rounds", mode="before")
    @classmethod
    def _rounds_of_registered_kinds(cls, value: Any) -> Any:
        return parse_rounds(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _held_out_is_held_out(self) -> ScheduleConfig:
        overlap = set(self.data.train_workflows or []) & set(self.data.held_out_workflows)
        if overlap:
            raise ValueError(f"workflows both trained on and held out: {sorted(overlap)}")
        return self

    @model_validator(mode="after")
    def _external_rounds_are_agentic(self) -> ScheduleConfig:
        if self.trainer.backend != "builtin":
            other = sorted({r.kind for r in self.rounds} - {"agentic"})
            if other:
                raise ValueError(
                    f"trainer.backend {self.trainer.backend} runs agentic rounds only; "
                    f"this config also has {', '.join(other)} rounds"
                )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ScheduleConfig:
    raw = resolve_extends(load_yaml(Path(path).read_text()) or {}, Path(path))
    return ScheduleConfig.model_validate(apply_overrides(raw, overrides))
