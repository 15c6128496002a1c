"""`agentwheel serve vllm:<path>` hands off to vLLM's own OpenAI server (`vllm serve`).

vLLM already serves the OpenAI API with continuous batching and tool-call parsing; what
agentwheel adds is the command line that matches how our checkpoints were trained: the
Hermes tool-call parser (agentwheel's tool template and Qwen3's both write Hermes
`<tool_call>` blocks), automatic tool choice, and the spec's chat-template keywords as
vLLM's defaults. A checkpoint's tokenizer already carries its training template, so no
`--chat-template` is passed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agentwheel.llm.spec_options import split_spec_options

DEFAULT_TOOL_PARSER = "hermes"


@dataclass(frozen=True)
class VLLMServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    model_name: str | None = None
    max_batch_size: int | None = None
    dtype: str | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    tool_parser: str = DEFAULT_TOOL_PARSER
    seed: int | None = None


def vllm_serve_command(spec: str, options: VLLMServeOptions) -> list[str]:
    """The `vllm serve` argv for a `vllm:<path or hub name>[?name=value...]` spec."""
    if not spec.startswith("vllm:"):
        raise ValueError(f"not a vllm: spec: {spec!r}")
    path, template_kwargs = split_spec_options(spec.removeprefix("vllm:"))
    if not path:
        raise ValueError(
            "a vllm: spec needs a model path or hub name, e.g. vllm:runs/demo/checkpoints/last/model"
        )
    command = [
        "vllm",
        "serve",
        path,
        "--host",
        options.host,
        "--port",
        str(options.port),
        "--served-model-name",
        options.model_name or spec,
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        options.tool_parser,
    ]
    optional: dict[str, Any] = {
        "--max-num-seqs": options.max_batch_size,
        "--dtype": options.dtype,
        "--max-model-len": options.max_model_len,
        "--gpu-memory-utilization": options.gpu_memory_utilization,
        "--seed": options.seed,
    }
    for flag, value in optional.items():
        if value is not None:
            command += [flag, str(value)]
    if template_kwargs:
        command += ["--default-chat-template-kwargs", json.dumps(template_kwargs)]
    return command
