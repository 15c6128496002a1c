"""The multi-round training schedule: base eval → SFT warm start → rounds of RL, resumable.

A run, all under one run directory:

    data        synthesize the train pool (train workflows) and the held-out set
                (held-out workflows, never trained on);
    eval:base   held-out pass^k of the starting policy;
    sft         warm start on oracle episodes of the train pool;
    eval:sft
    round r     (kind `agentic`) evolve tasks with the agentic flywheel from the latest
                rollout report, keep the learnable band of the current policy (fall back to
                the pool when the band is empty, and say so), GRPO steps with dynamic
                sampling, held-out eval, round report.
    round r     (kind `reasoning`) evolve problems with the reasoning flywheel from the last
                reasoning round's pool (the seeds in the first), keep the learnable band,
                GRPO on single-turn answers scored by the verified reasoning reward,
                held-out eval, round report. Kinds may alternate, as in the paper.
    report      plots and report.md.

Rollouts, flywheel probes and evals generate through a `Generator` (generation.py): the
trained weights themselves, or a separate engine (a bf16 transformers copy, vLLM) that
every checkpointed step marks stale and the next use refreshes.

Every finished phase is recorded in `state.json`; a checkpoint (`checkpoints/last`) is
written after every optimizer step, with the stage/round/step position and the task-stream
position, and `state.json` is updated after it. `resume=True` skips finished phases and
continues a training phase from its last checkpoint; rollout seeds and task order are
functions of (seed, round, step, attempt), so the resumed run repeats the uninterrupted one.

Layout: config.yaml, state.json, metrics.jsonl (one line per step, with stage/round/step),
data/{train,held_out}/, sft/, evals/<name>/ (run_eval output), rounds/round-<r>/
(probe/, evolve/, pool.jsonl, tasks.jsonl, rollouts/, report.json), checkpoints/{sft,last},
tb/ (TensorBoard, when available), plots/, report.md.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.dataset import load_tasks, write_tasks
from agentwheel.core.messages import SamplingParams
from agentwheel.core.task import Task
from agentwheel.envs.agent import ModelPolicy
from agentwheel.envs.runner import RunnerConfig
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.user import ScriptedUser
from agentwheel.eval.evaluate import (
    SUMMARY,
    TRACES,
    TraceWriter,
    read_traces,
    run_eval,
    summarize,
)
from agentwheel.flywheels.agentic.evolve import evolve_agentic
from agentwheel.flywheels.agentic.synth import TASKS, synth_agentic
from agentwheel.flywheels.agentic.workflow import Workflow
from agentwheel.flywheels.agentic.workflow_loader import load_workflow, workflow_paths
from agentwheel.flywheels.reasoning.answer_format import AnswerFormat
from agentwheel.flywheels.reasoning.evolve import EvolveConfig as ReasoningEvolveConfig
from agentwheel.flywheels.reasoning.evolve import evolve_reasoning
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.reward import ReasoningReward
from agentwheel.flywheels.reasoning.seeds import load_seed_file, write_problems
from agentwheel.flywheels.reasoning.stage_io import PROBLEMS
from agentwheel.flywheels.reasoning.synth import SynthConfig, synth_reasoning
from agentwheel.llm.hf import HFChatModel
from agentwheel.train.checkpoint import TrainerState, load_checkpoint, save_checkpoint
from agentwheel.train.config import GRPOConfig, SFTConfig
from agentwheel.train.generation import GenerationSettings, Generator
from agentwheel.train.grpo import GRPOTrainer
from agentwheel.train.model import is_lora
from agentwheel.train.reasoning_rollout import collect_reasoning_groups
from agentwheel.train.report import read_metrics, write_report
from agentwheel.train.rollout import TaskStream, TurnSeededPolicy, collect_groups, rollout_seed
from agentwheel.train.sft import SFTTrainer
from agentwheel.train.sft_data import oracle_sft_data

# Config -------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    device: str = Field("cpu", description="cpu | cuda")
    max_batch_size: int = Field(8, description="Prompts per generate call.")
    generation: GenerationSettings = Field(
        default_factory=GenerationSettings,
        description="What rollouts and evals generate with (see agentwheel/train/generation.py).",
    )


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


class SFTSettings(_Strict):
    enabled: bool = True
    trials: int = Field(1, ge=1, description="Oracle episodes per train-pool task.")
    max_tasks: int | None = Field(None, description="Cap on the tasks used for SFT data.")
    max_steps: int | None = Field(None, description="Stop after this many optimizer steps.")
    train: SFTConfig = Field(default_factory=SFTConfig)

    @field_validator("train", mode="before")
    @classmethod
    def _known_sft_fields(cls, value: Any) -> Any:
        return _reject_unknown_fields(SFTConfig, value)


class SamplingSettings(_Strict):
    temperature: float = Field(1.0, gt=0, description="Rollout sampling temperature.")
    max_new_tokens: int = Field(128, ge=1, description="Tokens per agent turn.")


class RunnerSettings(_Strict):
    max_agent_turns: int = 8
    max_episode_tokens: int = 4096
    batch_size: int = 32

    def runner_config(self) -> RunnerConfig:
        return RunnerConfig(
            max_agent_turns=self.max_agent_turns,
            max_episode_tokens=self.max_episode_tokens,
            batch_size=self.batch_size,
        )


class _RLRound(_Strict):
    """What every RL round has: GRPO steps over groups of rollouts of one item each."""

    steps: int = Field(2, ge=0, description="GRPO optimizer steps.")
    batch_groups: int = Field(4, ge=1, description="Informative groups (items) per step.")
    group_size: int = Field(4, ge=2, description="Rollouts per item.")
    max_attempts: int = Field(3, ge=1, description="Dynamic-sampling rounds per step.")


Operator = Literal["deepen", "lookup"]


def band_topped_up(
    band: list[Task], pool: list[Task], need: int, rng: np.random.Generator
) -> tuple[list[Task], str]:
    """The round's tasks: the learnable band, plus pool tasks drawn at random when the
    band has fewer than `need` (one band task whose rollouts all fail would leave the
    round without a single update)."""
    if len(band) >= need:
        return band, "learnable band of evolved tasks"
    ids = {t.id for t in band}
    rest = [t for t in pool if t.id not in ids]
    picked = [rest[int(i)] for i in rng.permutation(len(rest))[: need - len(band)]]
    return [*band, *picked], f"learnable band ({len(band)}) topped up with {len(picked)} pool tasks"


def _every_operator() -> list[Operator]:
    return ["deepen", "lookup"]


class AgenticRound(_RLRound):
    """One agentic RL round: flywheel refresh, then GRPO on the learnable tasks."""

    kind: Literal["agentic"] = "agentic"
    evolve: bool = Field(True, description="Evolve tasks with the agentic flywheel first.")
    evolve_tasks_per_workflow: int = Field(4, ge=1, description="New tasks per evolved tree.")
    band_samples: int = Field(2, ge=1, description="Attempts per new task for the band.")
    probe_tasks: int = Field(4, ge=1, description="Pool tasks probed when no rollouts exist.")
    min_round_tasks: int | None = Field(
        None,
        ge=1,
        description="A smaller learnable band is topped up with pool tasks to this many "
        "(default: steps × batch_groups), so a thin band cannot starve the round.",
    )
    operators: list[Operator] = Field(
        default_factory=_every_operator,
        min_length=1,
        description="How the flywheel makes new tasks (agentwheel/flywheels/agentic/evolve.py).",
    )


class ReasoningRound(_RLRound):
    """One reasoning RL round: reasoning-flywheel refresh, then GRPO on verified answers."""

    kind: Literal["reasoning"] = "reasoning"
    seeds: str = Field(
        "bundled",
        description="Seed problems for the first reasoning round (as `synth reasoning --seeds`).",
    )
    seed_limit: int | None = Field(64, ge=1, description="Keep only the first N seeds.")
    evolve: bool = Field(True, description="Evolve problems with the reasoning flywheel first.")
    probe_problems: int = Field(16, ge=1, description="Pool problems attempted by the flywheel.")
    band_samples: int = Field(2, ge=1, description="Attempts per problem for the band.")
    max_new_tokens: int = Field(256, ge=1, description="Tokens per answer.")
    format_weight: float = Field(0.1, ge=0, description="Reward for the answer format.")
    answer_format: AnswerFormat = Field(default_factory=AnswerFormat)


# A round kind is a settings model with its own `kind` literal; its phases are registered
# in `ROUND_RUNNERS`.
RoundSettings = Annotated[AgenticRound | ReasoningRound, Field(discriminator="kind")]


class EvalSettings(_Strict):
    k: int = Field(1, ge=1, description="Trials per held-out task (pass^1..pass^k).")
    temperature: float = Field(0.0, ge=0, description="0 = greedy.")
    max_new_tokens: int = 128


class ScheduleConfig(_Strict):
    name: str = "run"
    seed: int = 0
    model: ModelSettings = Field(default_factory=ModelSettings)
    data: DataSettings
    sft: SFTSettings = Field(default_factory=SFTSettings)
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)
    rollout: SamplingSettings = Field(default_factory=SamplingSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    rounds: list[RoundSettings] = Field(default_factory=list)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    tensorboard: bool = Field(True, description="Also log to TensorBoard when installed.")
    wandb_project: str | None = Field(
        None, description="Also log to this Weights & Biases project (needs `wandb` installed)."
    )
    plots: bool = Field(True, description="Write PNG plots when matplotlib is installed.")

    @field_validator("grpo", mode="before")
    @classmethod
    def _known_grpo_fields(cls, value: Any) -> Any:
        return _reject_unknown_fields(GRPOConfig, value)

    @model_validator(mode="after")
    def _held_out_is_held_out(self) -> ScheduleConfig:
        overlap = set(self.data.train_workflows or []) & set(self.data.held_out_workflows)
        if overlap:
            raise ValueError(f"workflows both trained on and held out: {sorted(overlap)}")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` → (["a", "b", "c"], value parsed as YAML)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not key.path=value")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


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


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ScheduleConfig:
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return ScheduleConfig.model_validate(apply_overrides(raw, overrides))


# Models -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _smollm2_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from agentwheel.llm.default_model import gguf_path

    gguf = gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def build_tiny_model(settings: ModelSettings, seed: int) -> HFChatModel:
    """A 2-layer random-weight Llama with SmolLM2's tokenizer (from the bundled GGUF)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from agentwheel.llm.template import tool_chat_template

    tokenizer = _smollm2_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        initializer_range=0.5,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    model = LlamaForCausalLM(config).eval()
    return HFChatModel(
        model,
        tokenizer,
        name="tiny",
        template=tool_chat_template(),
        max_batch_size=settings.max_batch_size,
    )


def build_hf_model(settings: ModelSettings, seed: int) -> HFChatModel:
    from agentwheel.llm.default_model import load_hf_spec

    return load_hf_spec(settings.spec, settings.dtype, settings.device, settings.max_batch_size)


ModelFactory = Callable[[ModelSettings, int], HFChatModel]
MODEL_FACTORIES: dict[str, ModelFactory] = {"tiny": build_tiny_model}


def build_model(settings: ModelSettings, seed: int) -> HFChatModel:
    """The policy named by `settings.spec`: a registered factory, or `hf:...`."""
    if settings.spec in MODEL_FACTORIES:
        return MODEL_FACTORIES[settings.spec](settings, seed)
    if settings.spec.startswith("hf:"):
        return build_hf_model(settings, seed)
    raise ValueError(f"unknown model spec {settings.spec!r}: use tiny, hf:default or hf:<path>")


# Run state ----------------------------------------------------------------------------


class RunState(BaseModel):
    """What a resumed run needs to know: finished phases, the training position, evals."""

    done: list[str] = Field(default_factory=list)
    position: dict[str, Any] = Field(default_factory=dict)  # stage, round, step
    checkpoint: dict[str, Any] = Field(default_factory=dict)  # trainer, path, stage position
    metrics_lines: int = 0
    evals: dict[str, float] = Field(default_factory=dict)  # eval name -> held-out pass^1
    notes: list[str] = Field(default_factory=list)


class MetricsLog:
    """metrics.jsonl (one JSON line per step) and, when they import, TensorBoard and wandb."""

    def __init__(self, run_dir: Path, tensorboard: bool, wandb_project: str | None = None):
        self.path = run_dir / "metrics.jsonl"
        self.writer: Any = None
        self.wandb: Any = None
        self.notes: list[str] = []
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tb"))
            except ImportError as exc:
                self.notes.append(f"TensorBoard skipped: {exc}")
        if wandb_project:
            try:
                import wandb

                self.wandb = wandb.init(
                    project=wandb_project, name=run_dir.name, dir=str(run_dir), resume="allow"
                )
            except ImportError as exc:
                self.notes.append(f"wandb skipped: {exc} (pip install wandb)")

    def truncate(self, lines: int) -> None:
        """Drop lines written after the last committed state (a crash between the two)."""
        _truncate_lines(self.path, lines)

    def write(self, record: dict[str, Any], global_step: int) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        prefix = record.get("stage", "run")
        scalars = {
            f"{prefix}/{key}": value
            for key, value in record.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, global_step)
            self.writer.flush()
        if self.wandb is not None:
            self.wandb.log(scalars, step=global_step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()


StepHook = Callable[[dict[str, Any]], None]
# One step's rollouts: (groups, their rewards or None for the environment's, the batch).
Collect = Callable[[int], tuple[list[list[Trajectory]], Sequence[Sequence[float]] | None, Any]]
Progress = Callable[[str, int, int], None]  # (phase description, done, total)


# The run ------------------------------------------------------------------------------


class ScheduleRun:
    """One run of a schedule in `run_dir`. `run()` does (or finishes) every phase."""

    def __init__(
        self,
        config: ScheduleConfig,
        run_dir: Path,
        *,
        resume: bool = False,
        on_step: StepHook | None = None,
        progress: Progress | None = None,
        log: Callable[[str], None] = print,
    ):
        self.config = config
        self.dir = Path(run_dir)
        self.on_step = on_step
        self.progress = progress
        self.log = log
        state_path = self.dir / "state.json"
        if state_path.exists() and not resume:
            raise FileExistsError(f"{state_path} exists: resume it, or pick another run dir")
        self.dir.mkdir(parents=True, exist_ok=True)
        if resume and (self.dir / "config.yaml").exists():
            saved = ScheduleConfig.model_validate(
                yaml.safe_load((self.dir / "config.yaml").read_text())
            )
            if saved != config:
                self.log(
                    "note: the config differs from the run's saved config; using the saved one"
                )
                self.config = config = saved
        write_text_atomic(self.dir / "config.yaml", config.to_yaml())
        self.state = (
            RunState.model_validate_json(state_path.read_text())
            if resume and state_path.exists()
            else RunState()
        )
        self.metrics = MetricsLog(self.dir, config.tensorboard, config.wandb_project)
        self.metrics.truncate(self.state.metrics_lines)
        for note in self.metrics.notes:
            if note not in self.state.notes:
                self.state.notes.append(note)
        self.model = build_model(config.model, config.seed)
        latest = self.dir / "checkpoints" / "last"
        if resume and self.state.checkpoint.get("trainer") not in (None, "sft") and latest.exists():
            # The newest (merged) weights for evals and flywheel steps. An SFT phase that
            # resumes loads its own checkpoint (with LoRA: adapters on the initial base).
            load_checkpoint(latest, self.model.model)
        self.runner_config = config.runner.runner_config()
        self.grpo: GRPOTrainer | None = None
        self.generator = Generator(
            config.model.generation, self.model, self._trained_module, self._initial_model_dir
        )

    # -- the model

    def _trained_module(self) -> Any:
        return self.grpo.model if self.grpo is not None else self.model.model

    def _initial_model_dir(self) -> str:
        """Where a separate engine (vLLM) loads the architecture from; weights follow."""
        from agentwheel.llm.default_model import hf_spec_dir

        return hf_spec_dir(self.config.model.spec)

    # -- bookkeeping

    def _commit(self) -> None:
        write_text_atomic(self.dir / "state.json", self.state.model_dump_json(indent=2))

    def _finish(self, phase: str) -> None:
        self.state.done.append(phase)
        self._commit()

    def _record(self, record: dict[str, Any], global_step: int) -> None:
        self.metrics.write(record, global_step)
        self.state.metrics_lines += 1

    def _note(self, text: str) -> None:
        self.log(f"note: {text}")
        self.state.notes.append(text)

    # -- data

    def train_tasks_path(self) -> Path:
        return self.dir / "data" / "train" / TASKS

    def held_out_path(self) -> Path:
        return self.dir / "data" / "held_out" / TASKS

    def _workflows(self) -> tuple[list[Workflow], list[Workflow]]:
        data = self.config.data
        by_id = {w.id: w for w in map(load_workflow, workflow_paths(data.workflows_dir))}
        missing = sorted(set(data.held_out_workflows + (data.train_workflows or [])) - set(by_id))
        if missing:
            raise ValueError(f"unknown workflow ids: {missing}; known: {sorted(by_id)}")
        held = [by_id[w] for w in data.held_out_workflows]
        train_ids = data.train_workflows or [w for w in by_id if w not in data.held_out_workflows]
        return [by_id[w] for w in train_ids], held

    def _train_workflow_paths(self) -> list[Path]:
        train, _ = self._workflows()
        ids = {w.id for w in train}
        return [
            p for p in workflow_paths(self.config.data.workflows_dir) if load_workflow(p).id in ids
        ]

    def phase_data(self) -> None:
        data, seed = self.config.data, self.config.seed
        train, held = self._workflows()
        synth_agentic(
            self.dir / "data" / "train",
            train,
            seed=seed,
            tasks_per_workflow=data.tasks_per_workflow,
            extra_conditions=data.extra_conditions,
        )
        held_dir = self.dir / "data" / "held_out" / "synth"
        # A different seed: held-out trees come from other workflows anyway, but their
        # sampled branches should not mirror the pool's.
        synth_agentic(held_dir, held, seed=seed + 7919, tasks_per_workflow=data.held_out_tasks)
        tasks = load_tasks(held_dir / TASKS).tasks
        order = np.random.default_rng([seed, 1]).permutation(len(tasks))
        chosen = [tasks[int(i)] for i in order[: data.held_out_tasks]]
        pool = load_tasks(self.train_tasks_path()).tasks
        seen = self._held_out_seen(train, pool) if data.held_out_seen_tasks else []
        write_tasks([*chosen, *seen], self.held_out_path())
        if not pool or not chosen:
            raise ValueError(f"empty data: {len(pool)} train tasks, {len(chosen)} held-out tasks")
        self.log(
            f"data: {len(pool)} train-pool tasks; held out: {len(chosen)} tasks of unseen "
            f"workflows, {len(seen)} new tasks of the train workflows"
        )

    def _held_out_seen(self, train: list[Workflow], pool: list[Task]) -> list[Task]:
        """New tasks of the train workflows: synthesized with another seed, and dropped
        when their request or user facts match any train-pool task's."""
        n, seed = self.config.data.held_out_seen_tasks, self.config.seed
        out = self.dir / "data" / "held_out" / "synth_seen"
        per_workflow = -(-n // len(train)) + 1
        synth_agentic(out, train, seed=seed + 104_729, tasks_per_workflow=per_workflow)
        trained = {_fingerprint(t) for t in pool}
        fresh = [t for t in load_tasks(out / TASKS).tasks if _fingerprint(t) not in trained]
        order = np.random.default_rng([seed, 2]).permutation(len(fresh))
        return [
            fresh[int(i)].model_copy(update={"id": f"heldout.{fresh[int(i)].id}"})
            for i in order[:n]
        ]

    # -- evaluation

    def _eval_policy(self) -> ModelPolicy:
        cfg = self.config.eval
        params = SamplingParams(
            temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, seed=self.config.seed
        )
        return ModelPolicy(self.generator.chat_model(), params, name=self.config.model.spec)

    def phase_eval(self, name: str, round_: int) -> float:
        self.model.model.eval()
        out = self.dir / "evals" / name
        tasks = load_tasks(self.held_out_path()).tasks
        summary = run_eval(
            tasks,
            self._eval_policy(),
            ScriptedUser(),
            self.config.eval.k,
            out,
            self.runner_config,
            resume=True,
            meta={"tasks": str(self.held_out_path()), "stage": name},
        )
        pass1 = float(summary["pass_hat_k"]["1"])
        self.state.evals[name] = pass1
        unseen = {w.id for w in self._workflows()[1]}
        split = _pass1_by_workflow_split(out / TRACES, tasks, unseen)
        self._record(
            {
                "stage": "eval",
                "eval": name,
                "round": round_,
                "step": self._global_step(),
                "held_out_pass1": pass1,
                **split,
                "mean_generated_tokens": summary["mean_generated_tokens"],
                "invalid_tool_calls": sum(summary["invalid_tool_calls"].values()),
            },
            self._global_step(),
        )
        self.log(f"eval {name}: held-out pass^1 = {pass1:.3f} ({summary['n_tasks']} tasks)")
        return pass1

    def _global_step(self) -> int:
        return int(self.state.position.get("global_step", 0))

    # -- SFT

    def _checkpoint(self, trainer: Any, name: str, position: dict[str, Any]) -> None:
        path = self.dir / "checkpoints" / name
        self.generator.mark_stale()
        save_checkpoint(
            path,
            trainer.model,
            trainer.optimizer,
            TrainerState(step=trainer.step_count, data_position=position),
            tokenizer=self.model.tokenizer,
            config=trainer.config,
        )

    def phase_sft(self) -> None:
        cfg = self.config.sft
        trainer = SFTTrainer(self.model.model, cfg.train, pad_id=self.model.pad_id)
        pool = load_tasks(self.train_tasks_path()).tasks
        if cfg.max_tasks is not None:
            pool = pool[: cfg.max_tasks]
        # The oracle gets the default turn limit: the policy's may be too short for it.
        data = oracle_sft_data(pool, self.model.renderer, cfg.train.max_seq_len, cfg.trials)
        manifest = {
            "sequences": len(data.sequences),
            "rejected": data.rejected,
            "trained_tokens": sum(s.num_trained_tokens for s in data.sequences),
            "mean_length": sum(len(s) for s in data.sequences) / max(1, len(data.sequences)),
        }
        (self.dir / "sft").mkdir(exist_ok=True)
        write_text_atomic(self.dir / "sft" / "manifest.json", json.dumps(manifest, indent=2))
        if self.state.checkpoint.get("trainer") == "sft":
            trainer.load(self.dir / "checkpoints" / "last")
            self.log(f"resumed SFT at step {trainer.step_count}")
        batches = -(-len(data.sequences) // cfg.train.batch_size) * cfg.train.epochs
        total = min(batches, cfg.max_steps) if cfg.max_steps is not None else batches

        def on_step(metrics: Any) -> None:
            global_step = self._global_step() + 1
            position = {"epoch": trainer.epoch, "batch_in_epoch": trainer.batch_in_epoch}
            self._checkpoint(trainer, "last", position)
            self.state.checkpoint = {"trainer": "sft", "step": trainer.step_count}
            self.state.position = {
                "stage": "sft",
                "round": 0,
                "step": metrics.step,
                "global_step": global_step,
            }
            record = {"stage": "sft", "round": 0, **metrics.as_dict(), "global_step": global_step}
            self._record(record, global_step)
            self._commit()
            if self.progress is not None:
                self.progress("SFT", metrics.step, total)
            if self.on_step is not None:
                self.on_step(record)

        # SFTTrainer.train advances batch_in_epoch before calling on_step, so the
        # checkpoint holds the position after this batch.
        trainer.train(data.sequences, max_steps=cfg.max_steps, on_step=on_step)
        self._checkpoint(
            trainer, "sft", {"epoch": trainer.epoch, "batch_in_epoch": trainer.batch_in_epoch}
        )
        self.state.checkpoint = {"trainer": "sft_done"}
        if is_lora(trainer.model):
            # GRPO trains its own adapters on the SFT policy: fold these into the base.
            self.model.model = trainer.model.merge_and_unload()  # type: ignore[operator]
        self.log(f"SFT: {trainer.step_count} steps on {len(data.sequences)} oracle sequences")

    # -- GRPO rounds

    def _grpo_trainer(self) -> GRPOTrainer:
        """One GRPO trainer (one optimizer) for all rounds; its reference is the SFT policy."""
        if self.grpo is None:
            sft = self.dir / "checkpoints" / "sft"
            if sft.exists():
                load_checkpoint(sft, self.model.model)
                self.generator.mark_stale()
            self.grpo = GRPOTrainer(self.model.model, self.config.grpo, pad_id=self.model.pad_id)
            if self.state.checkpoint.get("trainer") == "grpo":
                state = load_checkpoint(
                    self.dir / "checkpoints" / "last", self.grpo.model, self.grpo.optimizer
                )
                self.grpo.step_count = state.step
                self.log(f"resumed GRPO at optimizer step {state.step}")
        return self.grpo

    def _round_dir(self, round_: int) -> Path:
        return self.dir / "rounds" / f"round-{round_}"

    def _sampling_policy(self, *position: int) -> TurnSeededPolicy:
        cfg = self.config.rollout
        params = SamplingParams(
            temperature=cfg.temperature,
            max_new_tokens=cfg.max_new_tokens,
            seed=rollout_seed(self.config.seed, *position),
        )
        return TurnSeededPolicy(self.generator.chat_model(), params, name=self.config.model.spec)

    def _previous_round(self, round_: int, kind: str) -> int | None:
        """The latest round before `round_` of this kind (rounds may alternate kinds)."""
        earlier = [r for r in range(1, round_) if self.config.rounds[r - 1].kind == kind]
        return earlier[-1] if earlier else None

    def _pool_path(self, round_: int) -> Path:
        previous = self._previous_round(round_, "agentic")
        return (
            self._round_dir(previous) / "pool.jsonl"
            if previous is not None
            else self.train_tasks_path()
        )

    def phase_evolve(self, round_: int, settings: AgenticRound) -> None:
        """Pick the round's tasks: the flywheel's learnable band, or the pool as fallback."""
        rdir = self._round_dir(round_)
        rdir.mkdir(parents=True, exist_ok=True)
        self.model.model.eval()
        pool = load_tasks(self._pool_path(round_)).tasks
        info: dict[str, Any] = {"pool_tasks": len(pool)}
        band: list[Task] = []
        if settings.evolve:
            previous = self._previous_round(round_, "agentic")
            source = self._round_dir(previous or 0) / "rollouts"
            if previous is None or not (source / SUMMARY).exists():
                source = rdir / "probe"
                shutil.rmtree(source, ignore_errors=True)
                rng = np.random.default_rng([self.config.seed, round_, 0])
                probe = [pool[int(i)] for i in rng.permutation(len(pool))[: settings.probe_tasks]]
                write_tasks(probe, source / "tasks.jsonl")
                run_eval(
                    probe,
                    self._sampling_policy(round_, 1_000_000),
                    ScriptedUser(),
                    1,
                    source,
                    self.runner_config,
                    meta={"tasks": str(source / "tasks.jsonl"), "stage": f"probe-{round_}"},
                )
            out = rdir / "evolve"
            shutil.rmtree(out, ignore_errors=True)
            manifest = evolve_agentic(
                source,
                self._sampling_policy(round_, 2_000_000),
                out,
                samples=settings.band_samples,
                tasks_per_workflow=settings.evolve_tasks_per_workflow,
                seed=rollout_seed(self.config.seed, round_),
                workflows=self._train_workflow_paths(),  # type: ignore[arg-type]
                config=self.runner_config,
                operators=settings.operators,
            )
            band = load_tasks(out / TASKS).tasks
            info.update(
                evolve_source=str(source.relative_to(self.dir)),
                evolved_generated=manifest.generated,
                evolved_validated=manifest.validated,
                band=manifest.band,
                evolved_pass_rate=manifest.evolved_pass_rate,
                evolved_by_operator=manifest.tasks_by_operator,
            )
        if band:
            need = settings.min_round_tasks or settings.steps * settings.batch_groups
            rng = np.random.default_rng([self.config.seed, round_, 1])
            tasks, info["tasks_source"] = band_topped_up(band, pool, need, rng)
        else:
            why = "the learnable band is empty" if settings.evolve else "evolution is off"
            tasks, info["tasks_source"] = pool, f"fallback: the existing pool ({why})"
            self._note(f"round {round_}: {why}; training on the existing pool of {len(pool)} tasks")
        write_tasks(tasks, rdir / "tasks.jsonl")
        write_tasks([*pool, *band], rdir / "pool.jsonl")
        info["train_tasks"] = len(tasks)
        write_text_atomic(rdir / "selection.json", json.dumps(info, indent=2))

    def phase_grpo(self, round_: int, settings: AgenticRound) -> None:
        rdir = self._round_dir(round_)
        stream = TaskStream(
            load_tasks(rdir / "tasks.jsonl").tasks, rollout_seed(self.config.seed, round_)
        )

        def collect(step: int) -> tuple[list[list[Trajectory]], None, Any]:
            self.model.model.eval()
            batch = collect_groups(
                partial(self._sampling_policy, round_, step),
                stream,
                settings.batch_groups,
                settings.group_size,
                dynamic_sampling=self.config.grpo.dynamic_sampling,
                max_attempts=settings.max_attempts,
                runner_config=self.runner_config,
            )
            return batch.groups, None, batch

        self._grpo_steps(round_, settings.steps, stream, collect)

    def _grpo_steps(
        self, round_: int, steps: int, stream: TaskStream[Any], collect: Collect
    ) -> None:
        """GRPO steps of a round, each checkpointed; resumes mid-round from the position.

        `collect(step)` returns (groups, their rewards or None for the environment's,
        the rollout batch with `trajectories` and `metrics()`)."""
        trainer = self._grpo_trainer()
        rdir = self._round_dir(round_)
        start = 0
        pos = self.state.position
        if pos.get("stage") == "grpo" and pos.get("round") == round_:
            start, stream.drawn = int(pos["step"]), int(pos["tasks_drawn"])
        rollouts = rdir / "rollouts"
        if start == 0:
            shutil.rmtree(rollouts, ignore_errors=True)
        _truncate_lines(rollouts / TRACES, int(pos.get("rollout_lines", 0)) if start else 0)
        writer = TraceWriter(rollouts / TRACES)
        lines = int(pos.get("rollout_lines", 0)) if start else 0
        try:
            for step in range(start, steps):
                self.model.model.eval()
                groups, rewards, batch = collect(step)
                for t in batch.trajectories:
                    writer.write(t)
                lines += len(batch.trajectories)
                metrics = trainer.step(groups, rewards)
                global_step = self._global_step() + 1
                position = {
                    "stage": "grpo",
                    "round": round_,
                    "step": step + 1,
                    "tasks_drawn": stream.drawn,
                    "rollout_lines": lines,
                    "global_step": global_step,
                }
                self._checkpoint(trainer, "last", position)
                self.state.checkpoint = {"trainer": "grpo", "step": trainer.step_count}
                self.state.position = position
                record = {
                    "stage": "grpo",
                    "round": round_,
                    "kind": self.config.rounds[round_ - 1].kind,
                    **metrics.as_dict(),
                    "step": step + 1,
                    "optimizer_step": metrics.step,
                    "global_step": global_step,
                    **batch.metrics(),
                }
                self._record(record, global_step)
                self._commit()
                if self.progress is not None:
                    self.progress(f"GRPO round {round_}", step + 1, steps)
                if self.on_step is not None:
                    self.on_step(record)
        finally:
            writer.close()
        summary = summarize(
            read_traces(rollouts / TRACES).done,
            1,
            meta={"tasks": str(rdir / "tasks.jsonl"), "stage": f"rollouts-{round_}"},
        )
        write_text_atomic(rollouts / SUMMARY, json.dumps(summary, indent=2))

    # -- reasoning rounds

    def _problem_pool_path(self, round_: int, settings: ReasoningRound) -> Path:
        """The reasoning pool this round starts from: the last reasoning round's pool, or
        the seeds (synthesized into `reasoning/seeds` on first use)."""
        previous = self._previous_round(round_, "reasoning")
        if previous is not None:
            return self._round_dir(previous) / "problem_pool.jsonl"
        seeds = self.dir / "reasoning" / "seeds"
        if not (seeds / PROBLEMS).exists():
            synth_reasoning(
                settings.seeds, seeds, SynthConfig(seed=self.config.seed, limit=settings.seed_limit)
            )
        return seeds / PROBLEMS

    def _reasoning_params(self, settings: ReasoningRound, seed: int) -> SamplingParams:
        return SamplingParams(
            temperature=self.config.rollout.temperature,
            max_new_tokens=settings.max_new_tokens,
            seed=seed,
        )

    def phase_reasoning_evolve(self, round_: int, settings: ReasoningRound) -> None:
        """Pick the round's problems: the reasoning flywheel's learnable band, or the pool."""
        rdir = self._round_dir(round_)
        rdir.mkdir(parents=True, exist_ok=True)
        self.model.model.eval()
        pool_path = self._problem_pool_path(round_, settings)
        pool = load_seed_file(pool_path).problems
        info: dict[str, Any] = {"pool_tasks": len(pool)}
        band: list[Problem] = []
        if settings.evolve:
            config = ReasoningEvolveConfig(
                n=settings.band_samples,
                round=round_,
                limit=settings.probe_problems,
                policy_params=self._reasoning_params(
                    settings, rollout_seed(self.config.seed, round_, 2_000_000)
                ),
                answer_format=settings.answer_format,
                seed=rollout_seed(self.config.seed, round_),
            )
            # Journaled by the flywheel: a killed evolve resumes where it stopped.
            manifest = evolve_reasoning(
                pool_path, self.generator.chat_model(), None, rdir / "evolve", config=config
            )
            band = load_seed_file(rdir / "evolve" / PROBLEMS).problems
            info.update(
                evolve_counts=manifest["counts"],
                evolve_pass_rates=manifest["pass_rates"],
                band=len(band),
            )
        if band:
            problems, info["tasks_source"] = band, "learnable band of the reasoning flywheel"
        else:
            why = "the learnable band is empty" if settings.evolve else "evolution is off"
            problems, info["tasks_source"] = pool, f"fallback: the existing pool ({why})"
            self._note(f"round {round_}: {why}; training on the pool of {len(pool)} problems")
        known = {p.id for p in pool}
        write_problems(problems, rdir / PROBLEMS)
        write_problems(
            [*pool, *(p for p in band if p.id not in known)], rdir / "problem_pool.jsonl"
        )
        info["train_tasks"] = len(problems)
        write_text_atomic(rdir / "selection.json", json.dumps(info, indent=2))

    def phase_reasoning_grpo(self, round_: int, settings: ReasoningRound) -> None:
        rdir = self._round_dir(round_)
        problems = load_seed_file(rdir / PROBLEMS).problems
        stream = TaskStream(problems, rollout_seed(self.config.seed, round_))
        reward = ReasoningReward(settings.answer_format, format_weight=settings.format_weight)

        def collect(step: int) -> tuple[list[list[Trajectory]], list[list[float]], Any]:
            batch = collect_reasoning_groups(
                self.generator.chat_model(),
                lambda attempt: self._reasoning_params(
                    settings, rollout_seed(self.config.seed, round_, step, attempt)
                ),
                stream,
                settings.batch_groups,
                settings.group_size,
                reward,
                dynamic_sampling=self.config.grpo.dynamic_sampling,
                max_attempts=settings.max_attempts,
            )
            return batch.groups, batch.rewards, batch

        self._grpo_steps(round_, settings.steps, stream, collect)

    def phase_round_report(self, round_: int, settings: AgenticRound | ReasoningRound) -> None:
        rdir = self._round_dir(round_)
        steps = [
            m for m in read_metrics(self.dir) if m.get("stage") == "grpo" and m["round"] == round_
        ]
        previous = "sft" if round_ == 1 else f"round-{round_ - 1}"
        report = {
            "round": round_,
            "kind": settings.kind,
            "settings": settings.model_dump(),
            "selection": json.loads((rdir / "selection.json").read_text()),
            "steps": len(steps),
            "updates": sum(1 for m in steps if m["updated"]),
            "rollout_reward_mean": _mean([m["rollout_reward_mean"] for m in steps]),
            "groups_dropped": sum(m["rollout_groups_dropped"] for m in steps),
            "rollout_attempts": sum(m["rollout_attempts"] for m in steps),
            "exhausted_steps": sum(1 for m in steps if m["rollout_exhausted"]),
            "held_out_pass1_before": self.state.evals.get(previous),
            "held_out_pass1_after": self.state.evals.get(f"round-{round_}"),
        }
        write_text_atomic(rdir / "report.json", json.dumps(report, indent=2))
        headline = {k: report[k] for k in ("steps", "updates", "held_out_pass1_after")}
        self.log(f"round {round_}: {json.dumps(headline)}")

    # -- driver

    def run(self) -> RunState:
        """Every phase not yet done, in order; returns the final state."""
        started = time.perf_counter()
        phases: list[tuple[str, Callable[[], Any]]] = [
            ("data", self.phase_data),
            ("eval:base", lambda: self.phase_eval("base", 0)),
        ]
        if self.config.sft.enabled:
            phases += [("sft", self.phase_sft), ("eval:sft", lambda: self.phase_eval("sft", 0))]
        for r, settings in enumerate(self.config.rounds, start=1):
            runner = ROUND_RUNNERS[settings.kind]
            phases += [(f"round-{r}:{name}", fn) for name, fn in runner(self, r, settings)]
        phases.append(("report", lambda: write_report(self.dir, self.config.plots)))
        try:
            for name, fn in phases:
                if name in self.state.done:
                    continue
                self.log(f"== {name}")
                fn()
                self._finish(name)
        finally:
            self.metrics.close()
        self.log(f"run finished in {time.perf_counter() - started:.1f}s: {self.dir}")
        return self.state


def agentic_round_phases(
    run: ScheduleRun, round_: int, settings: AgenticRound
) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("evolve", lambda: run.phase_evolve(round_, settings)),
        ("grpo", lambda: run.phase_grpo(round_, settings)),
        ("eval", lambda: run.phase_eval(f"round-{round_}", round_)),
        ("report", lambda: run.phase_round_report(round_, settings)),
    ]


def reasoning_round_phases(
    run: ScheduleRun, round_: int, settings: ReasoningRound
) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("evolve", lambda: run.phase_reasoning_evolve(round_, settings)),
        ("grpo", lambda: run.phase_reasoning_grpo(round_, settings)),
        ("eval", lambda: run.phase_eval(f"round-{round_}", round_)),
        ("report", lambda: run.phase_round_report(round_, settings)),
    ]


RoundRunner = Callable[[ScheduleRun, int, Any], list[tuple[str, Callable[[], Any]]]]
ROUND_RUNNERS: dict[str, RoundRunner] = {
    "agentic": agentic_round_phases,
    "reasoning": reasoning_round_phases,
}


def run_schedule(
    config: ScheduleConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    on_step: StepHook | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> RunState:
    """Run (or resume) a schedule in `run_dir`; see the module docstring for the phases."""
    return ScheduleRun(
        config, Path(run_dir), resume=resume, on_step=on_step, progress=progress, log=log
    ).run()


def _fingerprint(task: Task) -> str:
    """What makes two tasks the same test for a model: the request and the user's facts."""
    facts = sorted(f"{k}={v}" for k, v in task.user.known_facts.items())
    return "\x1f".join([task.user.request, *facts])


def _pass1_by_workflow_split(
    traces: Path, tasks: Sequence[Task], unseen_workflows: set[str]
) -> dict[str, float | None]:
    """pass^1 on the held-out tasks of unseen workflows and on the new tasks of the
    train workflows (None for a part with no tasks)."""
    unseen = {t.id for t in tasks if t.lineage.source_workflow in unseen_workflows}
    outcomes: dict[str, list[bool]] = {"unseen": [], "seen": []}
    for t in read_traces(traces).done:
        outcomes["unseen" if t.task_id in unseen else "seen"].append(t.passed)
    return {
        f"held_out_pass1_{part}_workflows": (sum(v) / len(v) if v else None)
        for part, v in outcomes.items()
    }


def _truncate_lines(path: Path, lines: int) -> None:
    """Keep the first `lines` lines of a JSONL file (what the committed state accounts for)."""
    if path.exists():
        kept = path.read_text().splitlines(keepends=True)[:lines]
        write_text_atomic(path, "".join(kept))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
