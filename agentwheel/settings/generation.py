"""How a training run generates (rollouts, flywheel probes, evals): the engine and its
dtype. The engine itself is agentwheel/train/generation.py."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Backend = Literal["shared", "hf", "vllm"]


class GenerationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Backend = Field(
        "shared", description="shared (the trained weights) | hf (a copy in dtype) | vllm (GPU)"
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "bfloat16", description="Weight dtype of a separate engine (hf, vllm)."
    )
    gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="vLLM: share of GPU memory for weights and KV cache."
    )
    max_model_len: int | None = Field(
        None, ge=1, description="vLLM: context length; None = model's."
    )
