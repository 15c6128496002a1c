"""The policy a run trains: the model (its module, tokenizer and chat template), the engine
it generates with (generation.py), and the one GRPO trainer every round shares.

The run's record of what is done (run_ledger.py) is the other half of a run; phases see
both through `RunContext` (run_context.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from agentwheel.core.messages import SamplingParams
from agentwheel.llm.hf import HFChatModel
from agentwheel.llm.template import ChatTemplateRenderer
from agentwheel.llm.types import ChatModel
from agentwheel.settings.schedule import ScheduleConfig
from agentwheel.train.checkpoint import load_checkpoint, load_model_weights
from agentwheel.train.generation import Generator
from agentwheel.train.grpo import GRPOTrainer, training_reward
from agentwheel.train.model_factory import build_model
from agentwheel.train.rollout import TurnSeededPolicy, rollout_seed
from agentwheel.train.trainer_base import Trainer


class Policy:
    """The model `config.model` names, built once per run (weights loaded by the caller)."""

    def __init__(self, config: ScheduleConfig):
        self.config = config
        self.hf: HFChatModel = build_model(config.model, config.seed)
        self.grpo: GRPOTrainer | None = None
        self.generator = Generator(
            config.model.generation, self.hf, self._trained_module, self._initial_model_dir
        )

    # -- the model

    @property
    def module(self) -> nn.Module:
        """The torch module holding the policy's weights (what SFT trains)."""
        return self.hf.model  # type: ignore[no-any-return]

    @module.setter
    def module(self, module: nn.Module) -> None:
        self.hf.model = module

    @property
    def pad_id(self) -> int:
        return self.hf.pad_id

    @property
    def renderer(self) -> ChatTemplateRenderer:
        return self.hf.renderer

    def tokenizer(self) -> Any:
        """The tokenizer to save beside the weights (its chat template included)."""
        return self.hf.standalone_tokenizer()

    def load(self, checkpoint: str | Path) -> None:
        """The weights of a checkpoint of ours (adapters merged as saved)."""
        load_checkpoint(checkpoint, self.module)
        self.generator.mark_stale()

    def adopt(self, model_dir: Path) -> None:
        """The weights of a Hugging Face directory (an external engine's round)."""
        load_model_weights(model_dir, self.module)
        self.generator.mark_stale()

    def to(self, device: str) -> None:
        self.module.to(device)

    def _trained_module(self) -> Any:
        return self.grpo.model if self.grpo is not None else self.module

    def _initial_model_dir(self) -> str:
        """Where a separate engine (vLLM) loads the architecture from; weights follow."""
        from agentwheel.llm.default_model import hf_spec_dir

        return hf_spec_dir(self.config.model.spec)

    # -- generation

    def chat_model(self) -> ChatModel:
        """The policy as a chat model, with the newest weights (see generation.py)."""
        return self.generator.chat_model()

    def rollout_policy(self, *position: int) -> TurnSeededPolicy:
        """The policy sampling agentic episodes at `position` (round, step, attempt, ...)."""
        cfg = self.config.rollout
        params = SamplingParams(
            temperature=cfg.temperature,
            max_new_tokens=cfg.max_new_tokens,
            seed=rollout_seed(self.config.seed, *position),
        )
        return TurnSeededPolicy(self.chat_model(), params, name=self.config.model.spec)

    # -- training

    def grpo_trainer(
        self, reference: str | Path | None, resume_from: Path | None = None
    ) -> GRPOTrainer:
        """One GRPO trainer (one optimizer) for all rounds, made on first use on the
        `reference` weights (the SFT policy) when given, and resumed from a checkpoint of
        its own when given."""
        if self.grpo is None:
            if reference is not None:
                self.load(reference)
            self.grpo = GRPOTrainer(
                self.module,
                self.config.grpo,
                temperature=self.config.rollout.temperature,
                reward_fn=training_reward(self.config.grpo),
                pad_id=self.pad_id,
            )
            if resume_from is not None:
                self.grpo.load(resume_from)
        return self.grpo

    def save(
        self,
        trainer: Trainer,
        path: Path,
        position: dict[str, Any],
        run_state: str | None = None,
    ) -> None:
        """Checkpoint `trainer` (this policy's SFT or GRPO trainer) at `path`; the
        generation engine is stale after it."""
        self.generator.mark_stale()
        trainer.save(
            path,
            tokenizer=self.tokenizer(),
            save_dtype=self.config.model.save_dtype,
            data_position=position,
            run_state=run_state,
        )
