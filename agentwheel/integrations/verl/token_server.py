"""A stand-in for verl's server manager, backed by any of our token chat models.

verl's agent loops generate through `server_manager.generate(request_id, prompt_ids=...,
sampling_params=...)`, served by vLLM or SGLang replicas. `ChatModelTokenServer` serves
the same call from a `ChatModel` with a renderer (`HFChatModel`, `VLLMChatModel`): on a
CPU it runs the agent loop end to end with a tiny or the default model, which is how the
loop is checked against our own runner without a GPU.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from agentwheel.core.messages import ChatRequest, SamplingParams
from agentwheel.llm.types import ChatModel


@dataclass
class ServedTokens:
    """The fields of verl's `TokenOutput` that an agent loop reads."""

    token_ids: list[int]
    log_probs: list[float] | None = None
    stop_reason: str | None = "completed"


class ChatModelTokenServer:
    """Serves generations from `model`, one at a time (the model is not shared across
    threads), off the event loop so that other episodes keep going.

    verl's sampling parameters map to ours: `max_tokens` (or `max_new_tokens`),
    `temperature` and `top_p`; `seed` seeds every call alike, as our runner's sampling
    parameters do, so the same prompt ids give the same ids in both.
    """

    def __init__(self, model: ChatModel, seed: int | None = None, default_max_tokens: int = 256):
        if model.renderer is None:
            raise ValueError(f"{model.name} has no renderer: it cannot continue prompt ids")
        self.model = model
        self.seed = seed
        self.default_max_tokens = default_max_tokens
        self.calls = 0
        self._lock: asyncio.Lock | None = None

    def sampling(self, sampling_params: dict[str, Any]) -> SamplingParams:
        max_tokens = sampling_params.get("max_tokens", sampling_params.get("max_new_tokens"))
        return SamplingParams(
            max_new_tokens=int(max_tokens or self.default_max_tokens),
            temperature=max(0.0, float(sampling_params.get("temperature", 1.0))),
            top_p=float(sampling_params.get("top_p", 1.0)),
            seed=self.seed,
        )

    async def generate(
        self,
        request_id: str,
        *,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        **_: Any,
    ) -> ServedTokens:
        if self._lock is None:
            self._lock = asyncio.Lock()
        request = ChatRequest(messages=[], prompt_ids=list(prompt_ids))
        params = self.sampling(sampling_params)
        async with self._lock:
            self.calls += 1
            completion = (await asyncio.to_thread(self.model.chat, [request], params))[0]
        if completion.failed:
            raise RuntimeError(completion.error or "generation failed")
        return ServedTokens(
            token_ids=list(completion.completion_ids or []),
            log_probs=completion.logprobs,
        )

    def __getstate__(self) -> dict[str, Any]:
        # Sent to Ray workers by pickling: the lock belongs to the sender's event loop.
        return {**self.__dict__, "_lock": None}
