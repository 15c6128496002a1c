"""The policy a run trains: which model, where, in what dtype, and how it generates. The
model is built from these by agentwheel/train/model_factory.py."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from agentwheel.settings.generation import GenerationSettings
from agentwheel.settings.strict import Strict


class ModelSettings(Strict):
    spec: str = Field("hf:default", description="tiny | hf:default | hf:<path or hub name>")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="Weight dtype.")
    device: str = Field("cpu", description="cpu | cuda | cuda:<index> | mps")
    max_batch_size: int = Field(
        32,
        ge=1,
        description="Prompts per generate call at most: a batched call of more episodes "
        "(runner.batch_size) is generated in chunks of this many (the bound on a call's "
        "keys/values on a GPU; on a CPU a decode step's cost is mostly per step, so bigger "
        "is cheaper per row).",
    )
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

    def generation_dtype(self) -> str:
        """The dtype held-out evals and rollouts generate in: a separate engine's, or the
        trained weights' own."""
        return self.dtype if self.generation.backend == "shared" else self.generation.dtype
