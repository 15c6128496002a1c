"""The schedule's config: one pydantic model per section, loaded from YAML, overridable on
the CLI (`--set grpo.lr=2e-6`), printed at the start of a run and saved in its directory.

Unknown keys are rejected at every level. A round's settings are the model of its kind
(`kind: agentic | reasoning | ...`), looked up in the round-kind registry
(agentwheel/train/rounds/registry.py).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    field_validator,
    model_validator,
)

from agentwheel.core.task import BranchKind
from agentwheel.core.yaml_text import load_yaml
from agentwheel.envs.runner import RunnerConfig
from agentwheel.train.config import GRPOConfig, SFTConfig
from agentwheel.train.generation import GenerationSettings
from agentwheel.train.rounds.base import RLRound
from agentwheel.train.rounds.registry import parse_rounds


class _Strict(BaseModel):
    # No knob of a run means anything at inf or nan (YAML reads `.inf` and `.nan`).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _reject_unknown_fields(cls: type, value: Any) -> Any:
    """Pydantic ignores unknown keys of a stdlib dataclass; a typo in a knob must fail."""
    if isinstance(value, dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {unknown}")
    return value


class ModelSettings(_Strict):
    spec: str = Field("hf:default", description="tiny | hf:default | hf:<path or hub name>")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="Weight dtype.")
    device: str = Field("cpu", description="cpu | cuda | cuda:<index> | mps")
    max_batch_size: int = Field(8, ge=1, description="Prompts per generate call.")
    template_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keywords for the chat template, e.g. {enable_thinking: false} for Qwen3 "
        "(a spec's ?name=value options win); saved checkpoints carry them as defaults.",
    )
    save_dtype: Literal["float32", "bfloat16"] | None = Field(
        None,
        description="dtype of the weights in checkpoints' model/ (None: the training dtype). "
        "bfloat16 halves the size; a run resumed from such a checkpoint continues from the "
        "rounded weights.",
    )
    generation: GenerationSettings = Field(
        default_factory=GenerationSettings,
        description="What rollouts and evals generate with (see agentwheel/train/generation.py).",
    )
    init_from: str | None = Field(
        None,
        description="Start from this checkpoint's weights (e.g. another run's checkpoints/sft); "
        "GRPO's reference is then this policy.",
    )

    @field_validator("device")
    @classmethod
    def _a_torch_device(cls, value: str) -> str:
        """A device torch can name; whether it exists is checked where a run starts
        (agentwheel/cli/config_file.py), since a saved config may be read elsewhere."""
        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", value):
            raise ValueError(f"must be cpu, cuda, cuda:<index> or mps, got {value!r}")
        return value


class DataSettings(_Strict):
    workflows_dir: str | None = Field(None, description="Workflow YAML dir; None = bundled.")
    train_workflows: list[str] | None = Field(
        None, description="Workflow ids to train on; None = all but the held-out ones."
    )
    held_out_workflows: list[str] = Field(
        min_length=1, description="Workflow ids never trained on: the held-out eval set."
    )
    tasks_per_workflow: int = Field(8, ge=1, description="Train-pool tasks per workflow.")
    held_out_tasks: int = Field(
        8, ge=1, description="Held-out tasks from the held-out workflows, evaluated each stage."
    )
    held_out_seen_tasks: int = Field(
        0,
        ge=0,
        description="Also held out: new tasks of the train workflows (other data and "
        "phrasing, never in the train pool).",
    )
    extra_conditions: int = Field(0, ge=0, description="Extra preconditions in the pool trees.")
    extra_train_tasks: list[str] = Field(
        default_factory=list,
        description="Task sets added to the train pool as they are: a tasks file, a stage "
        "directory or a bundled set (search-fixtures, analysis-fixtures), so one run trains "
        "on workflow, search and analysis tasks together.",
    )
    reuse_from: str | None = Field(
        None,
        description="Copy the train pool and held-out set from this data directory (another "
        "run's data/) instead of synthesizing them.",
    )
    require_branch_kinds: list[BranchKind] = Field(
        default_factory=list,
        description="Fail the data phase when the train pool or the held-out set lacks one "
        "of these branch kinds.",
    )


class SFTSettings(_Strict):
    enabled: bool = True
    trials: int = Field(1, ge=1, description="Oracle episodes per train-pool task.")
    max_tasks: int | None = Field(None, ge=1, description="Cap on the tasks used for SFT data.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    kind_repeats: dict[BranchKind, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description="Oracle episodes per task of a branch kind, times `trials` (1 where absent): "
        "more happy and clarify demos keep the warm start from learning that refusing pays.",
    )
    train: SFTConfig = Field(default_factory=SFTConfig)

    @field_validator("train", mode="before")
    @classmethod
    def _known_sft_fields(cls, value: Any) -> Any:
        return _reject_unknown_fields(SFTConfig, value)


class SamplingSettings(_Strict):
    temperature: float = Field(1.0, gt=0, description="Rollout sampling temperature.")
    max_new_tokens: int = Field(128, ge=1, description="Tokens per agent turn.")


class RunnerSettings(_Strict):
    max_agent_turns: int = Field(8, ge=1, description="Agent turns before an episode is cut.")
    max_episode_tokens: int = Field(4096, ge=1, description="Tokens before an episode is cut.")
    batch_size: int = Field(32, ge=1, description="Episodes per batched model call.")

    def runner_config(self) -> RunnerConfig:
        # One batch in flight: more episodes only wait for the model, and their cached
        # prefixes evict each other (150 in flight overflowed the KV cache every turn).
        return RunnerConfig(
            max_agent_turns=self.max_agent_turns,
            max_episode_tokens=self.max_episode_tokens,
            batch_size=self.batch_size,
            max_in_flight=self.batch_size,
        )


class EvalSettings(_Strict):
    k: int = Field(1, ge=1, description="Trials per held-out task (pass^1..pass^k).")
    temperature: float = Field(0.0, ge=0, description="0 = greedy.")
    max_new_tokens: int = Field(128, ge=1, description="Tokens per agent turn.")


class VerlSettings(_Strict):
    preset: str = Field(
        "qwen3-1.7b",
        description="How the model fits a node: qwen3-1.7b | qwen3-4b | qwen3-8b "
        "(agentwheel/integrations/verl/launch.py).",
    )
    python: str = Field(
        ".venv-verl/bin/python",
        description="The interpreter that has verl (`make verl-env`), relative to the "
        "working directory or absolute.",
    )
    entrypoint: str = Field(
        "verl.trainer.main_ppo", description="The module run with `python -m` for a round."
    )
    nodes: int = Field(1, ge=1, description="Nodes of the Ray cluster verl trains on.")
    gpus_per_node: int = Field(8, ge=1, description="GPUs per node.")
    ray_address: str | None = Field(
        None, description="An existing Ray cluster (several nodes), e.g. 10.0.0.1:6379."
    )
    save_every: int = Field(
        10,
        ge=1,
        description="verl checkpoints every this many steps of a round (and after its last): "
        "where a killed round resumes.",
    )
    overrides: list[str] = Field(
        default_factory=list, description="More hydra overrides for verl; they win."
    )


class TrainerSettings(_Strict):
    backend: Literal["builtin", "verl"] = Field(
        "builtin",
        description="Who runs a round's RL steps: our GRPO trainer in this process, or verl "
        "on Ray (agentic rounds only; evolve, band, evals and checkpoints stay ours).",
    )
    verl: VerlSettings = Field(default_factory=VerlSettings)


class ScheduleConfig(_Strict):
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
    keep_round_checkpoints: bool = Field(
        True,
        description="Keep the weights after each round as checkpoints/round-<r> (hard links "
        "to the round's last checkpoint, without its optimizer state).",
    )

    @field_validator("grpo", mode="before")
    @classmethod
    def _known_grpo_fields(cls, value: Any) -> Any:
        return _reject_unknown_fields(GRPOConfig, value)

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


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` → (["a", "b", "c"], value parsed as YAML)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not key.path=value")
    key, raw = text.split("=", 1)
    return key.strip().split("."), load_yaml(raw)


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set dotted keys in a raw config dict; list items by index (`rounds.0.steps=4`)."""
    for text in overrides:
        path, value = parse_override(text)
        node: Any = raw
        for part in path[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(path[-1])] = value
        else:
            node[path[-1]] = value
    return raw


EXTENDS = "extends"


def resolve_extends(
    raw: dict[str, Any], path: Path, read: Any = None, chain: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """A config with `extends: other.yaml` (a path relative to its own file) is that file's
    config with this one's keys merged over it, mapping by mapping (a list replaces the
    list it overrides). `read(path)` reads a file as a mapping (default: plain YAML).
    A config that extends itself, directly or through others, raises `ValueError`."""
    parent_name = raw.pop(EXTENDS, None)
    if parent_name is None:
        return raw
    reader = read or (lambda p: load_yaml(Path(p).read_text()) or {})
    chain = (*chain, Path(path).resolve())
    parent_path = (path.parent / str(parent_name)).resolve()
    if parent_path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, parent_path))
        raise ValueError(f"configs extend each other in a cycle: {cycle}")
    if not parent_path.exists():
        raise FileNotFoundError(
            2, f"{path}: extends a config that does not exist", str(parent_path)
        )
    parent = resolve_extends(reader(parent_path), parent_path, reader, chain)
    return _merged(parent, raw)


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ScheduleConfig:
    raw = resolve_extends(load_yaml(Path(path).read_text()) or {}, Path(path))
    return ScheduleConfig.model_validate(apply_overrides(raw, overrides))
