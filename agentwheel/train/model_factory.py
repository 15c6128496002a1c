"""The policy a schedule trains, built from `model.spec`: `tiny` (a random-weight test
model built in code) or `hf:default` / `hf:<path or hub name>`."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from agentwheel.settings.model import ModelSettings

if TYPE_CHECKING:  # the factories import torch and transformers only when they build
    from agentwheel.llm.hf import HFChatModel


@lru_cache(maxsize=1)
def smollm2_tokenizer() -> Any:
    """SmolLM2's tokenizer, read from the bundled GGUF (raises DefaultModelMissing without it)."""
    from transformers import AutoTokenizer

    from agentwheel.llm.default_model import gguf_path

    gguf = gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def build_tiny_model(settings: ModelSettings, seed: int) -> HFChatModel:
    """A 2-layer random-weight Llama with SmolLM2's tokenizer (from the bundled GGUF)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from agentwheel.llm.hf import HFChatModel
    from agentwheel.llm.template import tool_chat_template

    tokenizer = smollm2_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        initializer_range=0.5,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    model = LlamaForCausalLM(config).eval()
    return HFChatModel(
        model,
        tokenizer,
        name="tiny",
        template=tool_chat_template(),
        max_batch_size=settings.max_batch_size,
        template_kwargs=settings.template_kwargs,
    )


def build_hf_model(settings: ModelSettings, seed: int) -> HFChatModel:
    from agentwheel.llm.default_model import load_hf_spec

    return load_hf_spec(
        settings.spec,
        settings.dtype,
        settings.device,
        settings.max_batch_size,
        template_kwargs=settings.template_kwargs,
    )


ModelFactory = Callable[[ModelSettings, int], "HFChatModel"]
MODEL_FACTORIES: dict[str, ModelFactory] = {"tiny": build_tiny_model}


def build_model(settings: ModelSettings, seed: int) -> HFChatModel:
    """The policy named by `settings.spec`: a registered factory, or `hf:...`."""
    if settings.spec in MODEL_FACTORIES:
        return MODEL_FACTORIES[settings.spec](settings, seed)
    if settings.spec.startswith("hf:"):
        return build_hf_model(settings, seed)
    raise ValueError(f"unknown model spec {settings.spec!r}: use tiny, hf:default or hf:<path>")
