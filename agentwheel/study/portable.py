"""A study's portable copy: what a later session needs to resume it, small enough to commit.

A study outlives a session; the next one may start on another machine with nothing but
the repository. `export_study` copies the run directory without what can be rebuilt:

- the full weights of every LoRA checkpoint (`model/*.safetensors`, 270 MB for the
  default model): the adapter beside them and the weights they sit on rebuild them;
- optimizer moments (`trainer_state.pt` keeps the step, data position and RNG states; a
  phase resumed mid-way restarts AdamW's moments, a finished phase never reads them);
- the `*.previous` fallback checkpoints, and every copy of the tokenizer but one.

`restore_study` copies a portable copy into a run directory (nothing already there is
overwritten) and rebuilds each checkpoint's `model/` from the weights it was trained on
plus its adapter: the shared phase's checkpoints sit on the base model, an arm's on the
shared SFT checkpoint. Then `agentwheel study --resume` redoes only what is missing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from agentwheel.core.atomic import write_text_atomic
from agentwheel.train.checkpoint import load_model_weights, save_model_dir
from agentwheel.train.model_factory import build_model
from agentwheel.train.schedule_config import ModelSettings

PORTABLE_MANIFEST = "portable.json"
SHARED_TOKENIZER = "tokenizer.json"
SFT_CHECKPOINT = Path("shared") / "checkpoints" / "sft"
_WEIGHTS = "*.safetensors"


def _is_rebuildable_weights(relative: Path) -> bool:
    parts = relative.parts
    return (
        len(parts) >= 3
        and parts[-2] == "model"
        and relative.match(_WEIGHTS)
        and _checkpoint_of(relative) is not None
    )


def _checkpoint_of(relative: Path) -> Path | None:
    """The checkpoint directory a `model/...` file belongs to, when it has an adapter."""
    index = relative.parts.index("model") if "model" in relative.parts else -1
    return Path(*relative.parts[:index]) if index > 0 else None


def _skipped(run_dir: Path, relative: Path) -> bool:
    if any(part.endswith(".previous") or part.startswith(".") for part in relative.parts):
        return True
    if relative.name == SHARED_TOKENIZER and "model" in relative.parts:
        return True
    checkpoint = _checkpoint_of(relative)
    has_adapter = checkpoint is not None and (run_dir / checkpoint / "adapter").is_dir()
    return has_adapter and _is_rebuildable_weights(relative)


def export_study(run_dir: Path, dest: Path) -> dict[str, int]:
    """Write the portable copy of `run_dir` to `dest` (replaced); returns its file count
    and bytes. Refuses a full fine-tune's checkpoint: its weights cannot be rebuilt."""
    full = [p.parent for p in _checkpoints(run_dir) if not (p.parent / "adapter").is_dir()]
    if full:
        raise ValueError(
            f"{full[0]} holds a full fine-tune (no adapter/): a portable study needs LoRA "
            "(sft.train.lora and grpo.lora), or its weights are too big to commit"
        )
    staging = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer: Path | None = None
    for source in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        relative = source.relative_to(run_dir)
        if relative.name == SHARED_TOKENIZER and "model" in relative.parts:
            tokenizer = tokenizer or source
        if _skipped(run_dir, relative):
            continue
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative.name == "trainer_state.pt":
            _save_without_optimizer(source, target)
        else:
            shutil.copyfile(source, target)
    if tokenizer is not None:
        shutil.copyfile(tokenizer, staging / SHARED_TOKENIZER)
    files = [p for p in staging.rglob("*") if p.is_file()]
    summary = {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}
    write_text_atomic(staging / PORTABLE_MANIFEST, json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return summary


def _checkpoints(run_dir: Path) -> Iterator[Path]:
    """The `model/` directories of every kept checkpoint (fallbacks excluded)."""
    for model_dir in sorted(run_dir.rglob("model")):
        relative = model_dir.relative_to(run_dir)
        kept = not any(p.endswith(".previous") for p in relative.parts)
        if kept and model_dir.is_dir() and (model_dir.parent / "trainer_state.pt").exists():
            yield model_dir


def _save_without_optimizer(source: Path, target: Path) -> None:
    state = torch.load(source, map_location="cpu", weights_only=True)
    state["optimizer"] = None
    torch.save(state, target)


WeightsBuilder = Callable[[Path | None, Path, Path], None]
"""(weights the adapter sits on, or None for the base model; adapter dir; model dir to
write): rebuild one checkpoint's merged weights."""


def restore_study(src: Path, run_dir: Path, rebuild: WeightsBuilder) -> list[Path]:
    """Copy the portable copy `src` into `run_dir` (files already there are kept) and
    rebuild the merged weights every checkpoint lacks; returns the rebuilt checkpoints."""
    if not (src / PORTABLE_MANIFEST).exists():
        raise ValueError(f"{src} is not a portable study (no {PORTABLE_MANIFEST})")
    for source in sorted(p for p in src.rglob("*") if p.is_file()):
        relative = source.relative_to(src)
        target = run_dir / relative
        if relative.name in (PORTABLE_MANIFEST,) or target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    rebuilt = []
    # Shared checkpoints first: an arm's weights sit on the shared SFT checkpoint.
    for adapter in sorted(run_dir.rglob("adapter"), key=lambda p: not _in_shared(run_dir, p)):
        checkpoint = adapter.parent
        model_dir = checkpoint / "model"
        if any(part.endswith(".previous") for part in checkpoint.parts) or any(
            model_dir.glob(_WEIGHTS)
        ):
            continue
        parent = None if _in_shared(run_dir, adapter) else run_dir / SFT_CHECKPOINT / "model"
        rebuild(parent, adapter, model_dir)
        tokenizer = src / SHARED_TOKENIZER
        if tokenizer.exists() and not (model_dir / SHARED_TOKENIZER).exists():
            shutil.copyfile(tokenizer, model_dir / SHARED_TOKENIZER)
        rebuilt.append(checkpoint)
    return rebuilt


def _in_shared(run_dir: Path, path: Path) -> bool:
    return path.relative_to(run_dir).parts[0] == "shared"


def rebuild_from_adapter(settings: ModelSettings, seed: int) -> WeightsBuilder:
    """A `WeightsBuilder` for the study's model: base (or parent) weights plus the adapter,
    merged, saved in the dtype the checkpoint's config names."""

    def rebuild(parent: Path | None, adapter: Path, model_dir: Path) -> None:
        from peft import PeftModel

        policy = build_model(settings, seed)
        if parent is not None:
            load_model_weights(parent, policy.model)
        merged = PeftModel.from_pretrained(policy.model, str(adapter)).merge_and_unload()
        config = model_dir / "config.json"
        saved = json.loads(config.read_text()) if config.exists() else {}
        save_model_dir(merged, model_dir, saved.get("dtype") or saved.get("torch_dtype"))

    return rebuild
