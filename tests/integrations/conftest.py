"""SmolLM2's tokenizer and the tiny random model of tests/llm, for the integration tests."""

from tests.llm.conftest import (  # noqa: F401  (fixtures, registered by import)
    one_torch_thread,
    tiny_model,
    tokenizer,
    tokenizer_dir,
)
