"""Checkpoints that serve and resume: a Hugging Face model directory plus trainer state.

Layout of a checkpoint directory:

    model/               safetensors + config (+ tokenizer): `from_pretrained`, vLLM.
                         With LoRA, the adapters merged into a copy of the base. The
                         tokenizer's chat template is the one the model was trained with
                         (pass `HFChatModel.standalone_tokenizer()`); the weights are in
                         `save_dtype` when given (bfloat16: half the size).
    adapter/             LoRA only: the adapters, which is what resuming loads.
    trainer_state.pt     optimizer state, step, data-order position, RNG states.
    state.json           step and data position, readable.
    train_config.json    the trainer config.
    run_state.json       optional: the caller's run state as of this checkpoint, so that
                         the checkpoint and the run's bookkeeping commit in one rename.
    COMPLETE             written last: the directory holds a whole checkpoint.

A checkpoint is written to a temporary sibling directory and renamed into place, so a
crash never leaves a half-written checkpoint under the final name. A crash between the two
renames of a replacement leaves no directory under the final name but a complete sibling;
`recover_checkpoint` puts the newest complete one back. Stale siblings are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from agentwheel.core.run_layout import (
    ADAPTER_DIR,
    ADAPTER_FILE,
    CHECKPOINT_STATE,
    COMPLETE,
    MODEL_DIR,
    RUN_STATE,
    TRAIN_CONFIG,
    TRAINER_STATE,
)
from agentwheel.settings.trainer import config_dict
from agentwheel.train.model import is_lora, merged_copy


@dataclass
class TrainerState:
    """What a trainer needs besides weights and optimizer to continue exactly."""

    step: int = 0
    data_position: dict[str, int] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, [int(k) for k in keys], pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


CRASH_POINT_ENV = "AGENTWHEEL_CRASH_AT"


class CheckpointDamaged(RuntimeError):
    """A checkpoint directory that cannot be loaded; the message names the file."""


def crash_point(name: str) -> None:
    """Fault injection for the kill-anywhere tests: SIGKILL this process when the
    environment names this point (`AGENTWHEEL_CRASH_AT=name` or `name@N` for the N-th pass).
    Costs one dictionary lookup otherwise."""
    wanted = os.environ.get(CRASH_POINT_ENV)
    if not wanted:
        return
    target, _, count = wanted.partition("@")
    if target != name:
        return
    passes = _CRASH_PASSES.get(name, 0) + 1
    _CRASH_PASSES[name] = passes
    if passes >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


_CRASH_PASSES: dict[str, int] = {}


def is_complete(path: Path) -> bool:
    return (path / COMPLETE).exists()


def _siblings(path: Path) -> list[Path]:
    """Temporaries and replaced copies of `path` left by this or an earlier process."""
    return sorted(path.parent.glob(f".{path.name}.tmp-*")) + sorted(
        path.parent.glob(f".{path.name}.old-*")
    )


def _checkpoint_step(path: Path) -> int:
    try:
        return int(json.loads((path / CHECKPOINT_STATE).read_text())["step"])
    except (OSError, ValueError, KeyError):
        return -1


def recover_checkpoint(path: str | Path) -> str | None:
    """Make `path` a complete checkpoint again if a kill left it missing or incomplete
    while a complete sibling exists (the newest by step is moved into place); remove stale
    siblings. Returns a note saying what was done, or None when nothing was needed."""
    path = Path(path)
    note = None
    if not is_complete(path):
        candidates = [p for p in _siblings(path) if is_complete(p)]
        if candidates:
            best = max(candidates, key=_checkpoint_step)
            if path.exists():
                shutil.rmtree(path)
            best.rename(path)
            note = f"recovered {path.name} from {best.name} (a kill interrupted its commit)"
    for stale in _siblings(path):
        shutil.rmtree(stale, ignore_errors=True)
    return note


@dataclass
class ResumePoint:
    """The checkpoint a resumed run continues from: the run state saved with it, whether
    it is the one before the newest (the newest was damaged), and what was done to get it."""

    run_state: str | None = None
    fell_back: bool = False
    notes: list[str] = field(default_factory=list)


def resume_point(path: str | Path) -> ResumePoint:
    """Make `path` a checkpoint a run can resume from: put back the one an interrupted
    commit left beside it; when it is damaged, move it aside (`<name>.damaged`) and put the
    one before it in its place. Raises `CheckpointDamaged` when neither can be loaded."""
    path = Path(path)
    point = ResumePoint()
    recovered = recover_checkpoint(path)
    if recovered:
        point.notes.append(recovered)
    if not path.exists():
        return point
    try:
        verify_checkpoint(path)
    except CheckpointDamaged as damaged:
        previous = previous_of(path)
        try:
            verify_checkpoint(previous)
        except CheckpointDamaged:
            raise CheckpointDamaged(
                f"{damaged}; no earlier complete checkpoint is kept beside it "
                "({previous.name}): start the run again in a new directory"
            ) from damaged
        aside = path.with_name(f"{path.name}.damaged")
        if aside.exists():
            shutil.rmtree(aside)
        path.rename(aside)
        previous.rename(path)
        point.fell_back = True
        point.notes.append(f"{damaged}; resuming from the checkpoint before it ({aside.name} kept)")
    point.run_state = read_run_state(path)
    return point


def read_run_state(path: str | Path) -> str | None:
    """The run state saved with a complete checkpoint, if any."""
    file = Path(path) / RUN_STATE
    return file.read_text(encoding="utf-8") if is_complete(Path(path)) and file.exists() else None


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    state: TrainerState,
    *,
    tokenizer: Any = None,
    config: Any = None,
    run_state: str | None = None,
    save_dtype: str | None = None,
) -> Path:
    """Write a checkpoint atomically to `path` (replacing one already there), with
    `run_state` (the caller's bookkeeping as of this checkpoint) inside it.

    `save_dtype` ("float32", "bfloat16", ...) is the dtype of the floating-point weights in
    `model/` (default: as trained). Resuming loads those weights, so a bfloat16 checkpoint
    of float32 training resumes from the rounded weights; LoRA adapters are kept as trained."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    with _quiet_transformers():
        if is_lora(model):
            model.save_pretrained(tmp / ADAPTER_DIR)  # type: ignore[operator]
            # A resumed run must continue from exactly these weights: merge into a copy.
            merged = merged_copy(model)
            save_model_dir(merged, tmp / MODEL_DIR, save_dtype)
            del merged
        else:
            save_model_dir(model, tmp / MODEL_DIR, save_dtype)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp / MODEL_DIR)

    torch.save(
        {
            "step": state.step,
            "data_position": dict(state.data_position),
            # None: the optimizer lives elsewhere (an external engine such as verl).
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "rng": capture_rng_state(),
        },
        tmp / TRAINER_STATE,
    )
    readable = {"step": state.step, "data_position": state.data_position}
    (tmp / CHECKPOINT_STATE).write_text(json.dumps(readable, indent=2) + "\n")
    if config is not None:
        (tmp / TRAIN_CONFIG).write_text(json.dumps(config_dict(config), indent=2) + "\n")
    if run_state is not None:
        (tmp / RUN_STATE).write_text(run_state, encoding="utf-8")
    crash_point("checkpoint:before_complete")
    _sync_tree(tmp)
    (tmp / COMPLETE).write_text(f"{state.step}\n")

    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        path.rename(old)
    crash_point("checkpoint:between_renames")
    tmp.rename(path)
    crash_point("checkpoint:after_rename")
    if old.exists():
        # The one before stays as the fallback should this one turn out damaged.
        previous = previous_of(path)
        if previous.exists():
            shutil.rmtree(previous)
        old.rename(previous)
    for stale in _siblings(path):
        shutil.rmtree(stale, ignore_errors=True)
    return path


def save_model_dir(model: nn.Module, directory: Path, save_dtype: str | None) -> None:
    """`save_pretrained`, with the floating-point weights cast to `save_dtype` and the
    config saying so (so that `from_pretrained(dtype="auto")` and vLLM load that dtype)."""
    if save_dtype is None:
        model.save_pretrained(directory)  # type: ignore[operator]
        return
    dtype = getattr(torch, save_dtype)
    weights = {
        name: tensor.to(dtype) if tensor.is_floating_point() else tensor
        for name, tensor in model.state_dict().items()
    }
    model.save_pretrained(directory, state_dict=weights)  # type: ignore[operator]
    config_file = directory / "config.json"
    saved = json.loads(config_file.read_text())
    for key in ("dtype", "torch_dtype"):
        if key in saved:
            saved[key] = save_dtype
    config_file.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")


def previous_of(path: Path) -> Path:
    """Where the checkpoint that `path` replaced is kept."""
    return path.with_name(f"{path.name}.previous")


def verify_checkpoint(path: str | Path) -> None:
    """Read every file a resume needs; raise `CheckpointDamaged` naming what is wrong."""
    path = Path(path)
    if not is_complete(path):
        raise CheckpointDamaged(f"checkpoint {path} is incomplete (no {COMPLETE} marker)")
    try:
        folder = path / ADAPTER_DIR if (path / ADAPTER_DIR).exists() else path / MODEL_DIR
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no safetensors files in {folder}")
        for file in files:
            load_file(file)
        torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=True)
        json.loads((path / CHECKPOINT_STATE).read_text())
    except Exception as exc:  # safetensors, torch.load and json each raise their own types
        raise CheckpointDamaged(f"checkpoint {path} cannot be loaded: {exc}") from exc


def _sync_tree(directory: Path) -> None:
    """fsync every file, so that the COMPLETE marker never reaches disk before the data."""
    for file in directory.rglob("*"):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No "Writing model shards" bar per checkpoint: a run writes one every step."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> TrainerState:
    """Load weights (adapters for a LoRA model) into `model` in place, the optimizer
    state into `optimizer`, and restore the global RNG states; returns step and data
    position. `model` and `optimizer` must be set up as when saving (same config)."""
    path = Path(path)
    try:
        return _load(path, model, optimizer)
    except Exception as exc:  # safetensors, torch.load and pickle each raise their own types
        if isinstance(exc, FileNotFoundError) and not path.exists():
            raise
        raise CheckpointDamaged(f"checkpoint {path} cannot be loaded: {exc}") from exc


def _load(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> TrainerState:
    device = next(model.parameters()).device
    if is_lora(model):
        from peft import set_peft_model_state_dict

        adapter = load_file(path / ADAPTER_DIR / ADAPTER_FILE, device=str(device))
        result: Any = set_peft_model_state_dict(model, adapter)
        # The base weights are "missing" from an adapter file by design; adapters are not.
        missing = [k for k in result.missing_keys if "lora_" in k]
        if result.unexpected_keys or missing:
            raise ValueError(
                f"adapter mismatch: unexpected {result.unexpected_keys[:5]}, missing {missing[:5]}"
            )
    else:
        _load_weights(path / MODEL_DIR, model, device)

    # On the CPU: RNG states must be CPU tensors; the optimizer moves its state to the params.
    saved = torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=True)
    if optimizer is not None and saved["optimizer"] is not None:
        optimizer.load_state_dict(saved["optimizer"])
    restore_rng_state(saved["rng"])
    return TrainerState(step=saved["step"], data_position=dict(saved["data_position"]))


def load_model_weights(model_dir: str | Path, model: nn.Module) -> None:
    """Load a Hugging Face model directory's safetensors into `model` in place (e.g. the
    weights an external engine trained); every weight must match by name."""
    _load_weights(Path(model_dir), model, next(model.parameters()).device)


def _load_weights(model_dir: Path, model: nn.Module, device: torch.device) -> None:
    weights: dict[str, torch.Tensor] = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        weights.update(load_file(file, device=str(device)))
    if not weights:
        raise FileNotFoundError(f"no safetensors files in {model_dir}")
    result: Any = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"unexpected weights in {model_dir}: {result.unexpected_keys[:5]}")
    # Tied weights (e.g. lm_head = embed_tokens) are saved once; anything else missing is a bug.
    params = model.state_dict(keep_vars=True)
    loaded = {params[k].data_ptr() for k in weights if k in params}
    untied = [k for k in result.missing_keys if params[k].data_ptr() not in loaded]
    if untied:
        raise ValueError(f"weights missing from {model_dir}: {untied[:5]}")


def weights_digest(model: nn.Module) -> str:
    """sha256 of every tensor of `model`'s state dict, by name: two models hash alike exactly
    when they hold the same weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def keep_weights(source: str | Path, path: str | Path) -> Path:
    """A lasting copy of checkpoint `source`'s weights at `path`, loadable with
    `load_checkpoint(path, model)` (no optimizer: it is for evaluation, not resuming).
    Files are hard links where the file system allows: `source` is only ever replaced
    by renames, never written in place, so the copy keeps its content."""
    source, path = Path(source), Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(
        source,
        tmp,
        ignore=shutil.ignore_patterns(TRAINER_STATE, RUN_STATE, COMPLETE),
        copy_function=_link_or_copy,
    )
    readable = json.loads((source / CHECKPOINT_STATE).read_text())
    torch.save({**readable, "optimizer": None, "rng": capture_rng_state()}, tmp / TRAINER_STATE)
    (tmp / COMPLETE).write_text(f"{readable['step']}\n")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
