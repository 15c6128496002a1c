"""A study's portable copy: what a later session needs to resume it, small enough to commit.

A study outlives a session; the next one may start on another machine with nothing but
the repository. `export_study` copies the run directory without what can be rebuilt:

- the full weights of every LoRA checkpoint (`model/*.safetensors`, 270 MB for the
  default model): the adapter beside them and the weights they sit on rebuild them;
- optimizer moments (`trainer_state.pt` keeps the step, data position and RNG states; a
  phase resumed mid-way restarts AdamW's moments, a finished phase never reads them);
- the `*.previous` fallback checkpoints, a round's checkpoint once a later round has
  one (the study reads only the last round's), and every copy of the tokenizer but one;
- a second copy of any file (`checkpoints/last` is the last round's): a `.same-as` note
  names the first.
Traces and other JSON text over `COMPRESS_ABOVE` bytes travel gzipped (`.portable.gz`,
about a tenth of their size), so a whole study stays within what a repository should hold.
Adapters are kept in bfloat16 (half their size): the rebuilt weights differ from the
trained ones by that rounding, which only matters to a phase that resumes training; the
evaluations on disk are kept, not redone.

`restore_study` copies a portable copy into a run directory (nothing already there is
overwritten) and rebuilds each checkpoint's `model/` from the weights it was trained on
plus its adapter: the shared phase's checkpoints sit on the base model, an arm's on the
shared SFT checkpoint. Then `agentwheel study --resume` redoes only what is missing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.run_layout import (
    ADAPTER_DIR,
    ADAPTER_FILE,
    CHECKPOINTS_DIR,
    COMPLETE,
    MODEL_DIR,
    SHARED_DIR,
    TRAINER_STATE,
    StudyLayout,
)
from agentwheel.settings.model import ModelSettings
from agentwheel.train.checkpoint import load_model_weights, save_model_dir
from agentwheel.train.model_factory import build_model

PORTABLE_MANIFEST = "portable.json"
SHARED_TOKENIZER = "tokenizer.json"
_WEIGHTS = "*.safetensors"
SAME_AS = ".same-as"
GZIPPED = ".portable.gz"
COMPRESS_ABOVE = 256 * 1024
_TEXT_SUFFIXES = (".jsonl", ".json")
_NOTE_BELOW = 4096  # smaller duplicates are copied: a note would save nothing


def _is_rebuildable_weights(relative: Path) -> bool:
    parts = relative.parts
    return (
        len(parts) >= 3
        and parts[-2] == MODEL_DIR
        and relative.match(_WEIGHTS)
        and _checkpoint_of(relative) is not None
    )


def _checkpoint_of(relative: Path) -> Path | None:
    """The checkpoint directory a `model/...` file belongs to, when it has an adapter."""
    index = relative.parts.index(MODEL_DIR) if MODEL_DIR in relative.parts else -1
    return Path(*relative.parts[:index]) if index > 0 else None


def _skipped(run_dir: Path, relative: Path) -> bool:
    if any(part.endswith(".previous") or part.startswith(".") for part in relative.parts):
        return True
    if _superseded_round(run_dir, relative):
        return True
    if relative.name == SHARED_TOKENIZER and MODEL_DIR in relative.parts:
        return True
    checkpoint = _checkpoint_of(relative)
    has_adapter = checkpoint is not None and (run_dir / checkpoint / ADAPTER_DIR).is_dir()
    return has_adapter and _is_rebuildable_weights(relative)


_ROUND = re.compile(r"^round-(\d+)$")


def _superseded_round(run_dir: Path, relative: Path) -> bool:
    """A file of a `checkpoints/round-k` whose checkpoints folder has a later round."""
    parts = relative.parts
    for i in range(1, len(parts) - 1):
        found = _ROUND.match(parts[i])
        if parts[i - 1] == CHECKPOINTS_DIR and found:
            folder = run_dir.joinpath(*parts[:i])
            later = [
                int(m.group(1))
                for p in folder.iterdir()
                if (m := _ROUND.match(p.name)) and (p / COMPLETE).exists()
            ]
            return max(later, default=0) > int(found.group(1))
    return False


def export_study(run_dir: Path, dest: Path, compress_above: int = COMPRESS_ABOVE) -> dict[str, int]:
    """Write the portable copy of `run_dir` to `dest` (replaced); returns its file count
    and bytes. Refuses a full fine-tune's checkpoint: its weights cannot be rebuilt."""
    full = [p.parent for p in _checkpoints(run_dir) if not (p.parent / ADAPTER_DIR).is_dir()]
    if full:
        raise ValueError(
            f"{full[0]} holds a full fine-tune (no adapter/): a portable study needs LoRA "
            "(sft.train.lora and grpo.lora), or its weights are too big to commit"
        )
    staging = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer: Path | None = None
    first_copy: dict[str, Path] = {}
    for source in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        relative = source.relative_to(run_dir)
        if relative.name == SHARED_TOKENIZER and MODEL_DIR in relative.parts:
            tokenizer = tokenizer or source
        if _skipped(run_dir, relative):
            continue
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        if digest in first_copy and source.stat().st_size > _NOTE_BELOW:
            _write_note(target, first_copy[digest])
        elif relative.name == TRAINER_STATE:
            _save_without_optimizer(source, target)
        elif relative.name == ADAPTER_FILE:
            _save_tensors(source, target, torch.bfloat16)
        elif source.suffix in _TEXT_SUFFIXES and source.stat().st_size > compress_above:
            _gzip(source, target.with_name(target.name + GZIPPED))
        else:
            shutil.copyfile(source, target)
        first_copy.setdefault(digest, relative)
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
    for model_dir in sorted(run_dir.rglob(MODEL_DIR)):
        relative = model_dir.relative_to(run_dir)
        kept = not any(p.endswith(".previous") for p in relative.parts)
        if kept and model_dir.is_dir() and (model_dir.parent / TRAINER_STATE).exists():
            yield model_dir


def _gzip(source: Path, target: Path) -> None:
    # mtime 0: the same file gives the same bytes, so a re-export changes nothing in git.
    with (
        source.open("rb") as raw,
        target.open("wb") as out,
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as packed,
    ):
        shutil.copyfileobj(raw, packed)


def _copy_out(source: Path, target: Path) -> None:
    """Copy one file of a portable copy back, unzipping what export gzipped."""
    if source.name.endswith(GZIPPED):
        with gzip.open(source, "rb") as packed, target.open("wb") as out:
            shutil.copyfileobj(packed, out)
    else:
        shutil.copyfile(source, target)


def _stored(src: Path, relative: str) -> Path:
    """Where the portable copy keeps the file a `.same-as` note names."""
    plain = src / relative
    return plain if plain.exists() else plain.with_name(plain.name + GZIPPED)


def _write_note(target: Path, original: Path) -> None:
    target.with_name(target.name + SAME_AS).write_text(original.as_posix() + "\n")


def _save_tensors(source: Path, target: Path, dtype: torch.dtype) -> None:
    tensors = load_file(source)
    save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}, target)


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
        if relative.name.endswith(SAME_AS):
            relative = relative.with_name(relative.name.removesuffix(SAME_AS))
            source = _stored(src, source.read_text().strip())
        elif relative.name.endswith(GZIPPED):
            relative = relative.with_name(relative.name.removesuffix(GZIPPED))
        target = run_dir / relative
        if relative.name == PORTABLE_MANIFEST or target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative.name == ADAPTER_FILE:
            _save_tensors(source, target, torch.float32)
        else:
            _copy_out(source, target)
    rebuilt = []
    # Shared checkpoints first: an arm's weights sit on the shared SFT checkpoint.
    for adapter in sorted(run_dir.rglob(ADAPTER_DIR), key=lambda p: not _in_shared(run_dir, p)):
        checkpoint = adapter.parent
        model_dir = checkpoint / MODEL_DIR
        if any(part.endswith(".previous") for part in checkpoint.parts) or any(
            model_dir.glob(_WEIGHTS)
        ):
            continue
        parent = (
            None
            if _in_shared(run_dir, adapter)
            else StudyLayout(run_dir).shared.sft_checkpoint / MODEL_DIR
        )
        rebuild(parent, adapter, model_dir)
        tokenizer = src / SHARED_TOKENIZER
        if tokenizer.exists() and not (model_dir / SHARED_TOKENIZER).exists():
            shutil.copyfile(tokenizer, model_dir / SHARED_TOKENIZER)
        rebuilt.append(checkpoint)
    return rebuilt


def _in_shared(run_dir: Path, path: Path) -> bool:
    return path.relative_to(run_dir).parts[0] == SHARED_DIR


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
