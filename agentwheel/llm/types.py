"""The chat-model protocol.

Every back-end (transformers, OpenAI-compatible HTTP, vLLM, scripted fakes) implements
`ChatModel.chat`: a batch of requests in, one `Completion` per request out. Back-ends
that own a tokenizer also expose a `renderer` so that callers can keep token-in,
token-out trajectories; the others leave it `None`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from agentwheel.core.messages import ChatRequest, Completion, FinishReason, Message, SamplingParams
from agentwheel.core.task import ToolSpec


class Renderer(Protocol):
    """Turns messages into token ids for a token back-end, one turn at a time.

    The contract that keeps trajectories token-in, token-out: the ids a policy generated
    are kept as they are; only the environment's turns are rendered and appended.
    """

    def initial_ids(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> list[int]:
        """The whole opening prompt (system with tools, first user turn), ending in the
        assistant generation prompt."""
        ...

    def close_turn_ids(
        self, completion_ids: Sequence[int], finish_reason: FinishReason
    ) -> list[int]:
        """Ids to append after generated ids so the assistant turn is closed as the chat
        template closes it (end-of-turn token and separator where generation lacked them)."""
        ...

    def continuation_ids(self, messages: Sequence[Message]) -> list[int]:
        """Ids of new user/tool messages after a closed assistant turn, ending in the
        assistant generation prompt."""
        ...

    def decode(self, ids: Sequence[int]) -> str: ...


@runtime_checkable
class ChatModel(Protocol):
    name: str

    @property
    def renderer(self) -> Renderer | None: ...

    def chat(self, requests: Sequence[ChatRequest], params: SamplingParams) -> list[Completion]:
        """Continue every conversation; never raises for per-request failures (they come
        back as completions with `finish_reason == "error"` and `error` set)."""
        ...
