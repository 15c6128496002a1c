"""Where a training run generates: the trained model itself, or an engine refreshed from it.

Rollouts, flywheel probes and evals need a chat model; the trainer owns another copy of
the weights. Three back-ends:

    shared   the trained module itself (HF `generate` on the training weights). Nothing to
             refresh; generation runs in the training dtype (float32 master weights).
    hf       a separate transformers copy in `dtype` (bfloat16 by default). On a CPU with
             native bf16 this is the fast path: bf16 generation measured ~1.6x faster than
             float32 for the default model on the demo's held-out eval; on one without, the
             copy is float32 (`agentwheel.llm.half_precision`).
    vllm     a vLLM engine on the GPU (`pip install -e ".[vllm]"`).

A separate engine is refreshed lazily: `mark_stale()` after anything that changes the
trained weights, and the next `chat_model()` pushes the (LoRA-merged) weights across.
Sampler log-probs of a separate engine come from other numerics than the trainer's, so
such runs usually recompute the old log-probs (`grpo.old_logprobs: recompute`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from agentwheel.llm.half_precision import runnable_dtype
from agentwheel.llm.hf import DTYPES, HFChatModel
from agentwheel.llm.types import ChatModel
from agentwheel.settings.generation import GenerationSettings
from agentwheel.train.model import copy_named_weights, merged_state_dict


class Generator:
    """The chat model a run generates with, kept in step with the trained weights.

    `trained` returns the module being trained right now (it changes: the plain model,
    then a GRPO trainer's possibly LoRA-wrapped one); `source` is the run's own
    `HFChatModel` (tokenizer, template, initial weights, on-disk path for vLLM).
    """

    def __init__(
        self,
        settings: GenerationSettings,
        source: HFChatModel,
        trained: Callable[[], nn.Module],
        model_path: Callable[[], str] | None = None,
    ):
        self.settings = settings
        self.source = source
        self.trained = trained
        self.model_path = model_path
        self.refreshes = 0
        self._engine: Any = None
        self._stale = True

    @property
    def separate(self) -> bool:
        return self.settings.backend != "shared"

    def mark_stale(self) -> None:
        self._stale = True

    def release(self) -> None:
        """Drop the separate engine (and its accelerator memory) until the next use, e.g.
        while an external trainer has the GPUs."""
        self._engine = None
        self._stale = True
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def chat_model(self) -> ChatModel:
        if not self.separate:
            return self.source
        if self._engine is None:
            self._engine = self._build()
        if self._stale:
            weights = merged_state_dict(self.trained()).items()
            if isinstance(self._engine, HFChatModel):
                copy_named_weights(self._engine.model, weights)
            else:
                self._engine.load_weights(weights)
            self.refreshes += 1
            self._stale = False
        engine: ChatModel = self._engine
        return engine

    def _build(self) -> Any:
        if self.settings.backend == "hf":
            return self._hf_copy()
        from agentwheel.llm.vllm_backend import load_vllm_model

        if self.model_path is None:
            raise ValueError("the vllm back-end needs the model's directory on disk")
        return load_vllm_model(
            self.model_path(),
            dtype=self.settings.dtype,
            gpu_memory_utilization=self.settings.gpu_memory_utilization,
            max_model_len=self.settings.max_model_len,
            name=f"vllm:{self.source.name}",
            template=self.source.renderer.template,
            template_kwargs=self.source.renderer.template_kwargs,
        )

    def _hf_copy(self) -> HFChatModel:
        # Weights come with the first refresh; only the architecture is needed here.
        base = self.source.model
        dtype = runnable_dtype(self.settings.dtype, base.device)
        copy = type(base)(base.config).to(device=base.device, dtype=DTYPES[dtype])
        copy.generation_config = base.generation_config
        return HFChatModel(
            copy,
            self.source.tokenizer,
            name=f"{self.source.name}[{dtype}]",
            template=self.source.renderer.template,
            template_kwargs=self.source.renderer.template_kwargs,
            max_batch_size=self.source.max_batch_size,
            max_context=self.source.max_context,
        )
