"""Trainer settings: one frozen dataclass per algorithm, each field a knob with a one-line doc.

The doc of a field is the string in its `Annotated[...]` type, so a CLI or a run log can
print every knob with its meaning: `describe(config)`.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

ComputeDtype = Literal["float32", "bfloat16"]
OldLogprobs = Literal["sampling", "recompute"]

# The ranges knobs are checked against, by the text that names them in an error.
RANGES: dict[str, Callable[[float], bool]] = {
    "> 0": lambda v: v > 0,
    ">= 0": lambda v: v >= 0,
    ">= 1": lambda v: v >= 1,
    ">= 2": lambda v: v >= 2,
    "[0, 1)": lambda v: 0 <= v < 1,
}


class KnobOutOfRange(ValueError):
    """A knob outside its range; `field` names it (a config file's error points at it)."""

    def __init__(self, field: str, value: Any, allowed: str):
        super().__init__(f"{field} must be {allowed}, got {value}")
        self.field = field


def check_ranges(config: Any, ranges: dict[str, str]) -> None:
    """Raise `KnobOutOfRange` for the first field of `config` outside its range in `ranges`
    (field name → a key of `RANGES`)."""
    for name, allowed in ranges.items():
        value = getattr(config, name)
        if not RANGES[allowed](value):
            raise KnobOutOfRange(name, value, allowed)


@dataclass(frozen=True)
class LoraSettings:
    """Low-rank adapters (via `peft`) instead of a full fine-tune."""

    rank: Annotated[int, "Rank r of the adapter matrices."] = 16
    alpha: Annotated[float, "Scale numerator: the update is (alpha / rank) * B @ A."] = 32.0
    dropout: Annotated[float, "Dropout on the adapter input."] = 0.0
    target_modules: Annotated[tuple[str, ...], "Names of the linear layers that get adapters."] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )

    def __post_init__(self) -> None:
        check_ranges(self, {"rank": ">= 1", "alpha": "> 0", "dropout": "[0, 1)"})


@dataclass(frozen=True)
class TrainConfig:
    """Knobs shared by every trainer: optimizer, batching and memory."""

    lr: Annotated[float, "AdamW learning rate (after warm-up)."] = 1e-5
    warmup_steps: Annotated[int, "Optimizer steps of linear warm-up from 0 to `lr`."] = 0
    weight_decay: Annotated[float, "AdamW decoupled weight decay."] = 0.0
    adam_beta1: Annotated[float, "AdamW beta1."] = 0.9
    adam_beta2: Annotated[float, "AdamW beta2."] = 0.999
    adam_eps: Annotated[float, "AdamW epsilon."] = 1e-8
    max_grad_norm: Annotated[float, "Clip the global gradient norm to this before each step."] = 1.0
    micro_batch_tokens: Annotated[
        int, "Padded tokens (rows x longest) per forward/backward; grads accumulate."
    ] = 8192
    max_seq_len: Annotated[int, "Sequences longer than this are cut from the right."] = 8192
    logprob_chunk_tokens: Annotated[
        int, "Positions per lm_head chunk: peak logit memory is this x vocab."
    ] = 256
    compute_dtype: Annotated[
        ComputeDtype, "Matmul dtype (torch.autocast); weights and optimizer keep theirs."
    ] = "float32"
    gradient_checkpointing: Annotated[bool, "Recompute layer activations in backward."] = False
    lora: Annotated[LoraSettings | None, "Train LoRA adapters instead of all weights."] = None
    seed: Annotated[int, "Seed for data order and torch/python/numpy RNGs."] = 0

    def __post_init__(self) -> None:
        check_ranges(
            self,
            {
                "lr": "> 0",
                "warmup_steps": ">= 0",
                "weight_decay": ">= 0",
                "adam_beta1": "[0, 1)",
                "adam_beta2": "[0, 1)",
                "adam_eps": "> 0",
                "max_grad_norm": "> 0",
                "micro_batch_tokens": ">= 1",
                "max_seq_len": ">= 2",
                "logprob_chunk_tokens": ">= 1",
                "seed": ">= 0",
            },
        )
        if self.compute_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"compute_dtype must be float32 or bfloat16, got {self.compute_dtype}")


@dataclass(frozen=True)
class SFTConfig(TrainConfig):
    """Supervised fine-tuning on (ids, loss_mask) sequences: cross-entropy where mask == 1."""

    lr: Annotated[float, "AdamW learning rate (after warm-up)."] = 1e-5
    batch_size: Annotated[int, "Sequences per optimizer step."] = 8
    epochs: Annotated[int, "Passes over the data set; each epoch has its own seeded order."] = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(self, {"batch_size": ">= 1", "epochs": ">= 1"})


@dataclass(frozen=True)
class GRPOConfig(TrainConfig):
    """Group-relative policy optimisation with clip-higher and dynamic sampling (DAPO)."""

    lr: Annotated[float, "AdamW learning rate (after warm-up)."] = 1e-6
    clip_low: Annotated[float, "Ratio clipped below at 1 - clip_low."] = 0.2
    clip_high: Annotated[float, "Ratio clipped above at 1 + clip_high (clip-higher)."] = 0.28
    kl_coef: Annotated[float, "Weight of the k3 KL penalty to the reference policy; 0 = none."] = (
        0.0
    )
    normalise_std: Annotated[bool, "Divide group-relative advantages by the group's std."] = True
    dynamic_sampling: Annotated[bool, "Drop groups whose rewards are all equal (no signal)."] = True
    wrong_stance_penalty: Annotated[
        float,
        "Training reward of a failed episode whose stance its branch kind rules out (a task "
        "to be done declined, one to be declined gone ahead with) is minus this; 0 = the "
        "environment's verdict alone.",
    ] = 0.0
    old_logprobs: Annotated[
        OldLogprobs,
        "sampling: the sampler's (recomputed where absent); recompute: always recompute.",
    ] = "sampling"
    share_prefixes: Annotated[
        bool,
        "Compute a group's shared prompt once in forward and backward (not with "
        "gradient checkpointing, which turns the decoder's cache off).",
    ] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ranges(
            self,
            {
                "clip_low": "[0, 1)",
                "clip_high": ">= 0",
                "kl_coef": ">= 0",
                "wrong_stance_penalty": ">= 0",
            },
        )


def describe(config: Any) -> list[tuple[str, Any, str]]:
    """(name, value, doc) for every field of a config, for printing at the start of a run."""
    hints = typing.get_type_hints(type(config), include_extras=True)
    rows = []
    for f in dataclasses.fields(config):
        docs = [m for m in getattr(hints[f.name], "__metadata__", ()) if isinstance(m, str)]
        rows.append((f.name, getattr(config, f.name), docs[0] if docs else ""))
    return rows


def config_dict(config: Any) -> dict[str, Any]:
    """The config as plain JSON-able values, for saving next to a run."""
    return {"kind": type(config).__name__, **dataclasses.asdict(config)}
