"""The chat-model protocol and the typed values that cross it.

Every back-end (transformers, OpenAI-compatible HTTP, scripted fakes) implements
`ChatModel.chat`: a batch of requests in, one `Completion` per request out. Back-ends
that own a tokenizer also expose a `renderer` so that callers can keep token-in,
token-out trajectories; the others leave it `None`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from agentwheel.tasks.schema import ToolSpec

Role = Literal["system", "user", "assistant", "tool"]
ToolCallErrorKind = Literal["malformed_json", "missing_name", "unknown_tool", "bad_arguments"]
FinishReason = Literal["stop", "length", "error"]


class ToolCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolCallError(BaseModel):
    """A tool call the model tried to make but got wrong; it is reported back to the model."""

    model_config = ConfigDict(frozen=True)

    kind: ToolCallErrorKind
    detail: str
    raw: str = ""
    tool: str | None = None


class Message(BaseModel):
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    def openai_dict(self) -> dict[str, Any]:
        """The message in the OpenAI chat format (also what HF chat templates read)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
            if self.name:
                out["name"] = self.name
        return out


class SamplingParams(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


class ChatRequest(BaseModel):
    """One conversation to continue. `prompt_ids`, when given to a token back-end, is used
    verbatim instead of rendering `messages` (token-in, token-out)."""

    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    prompt_ids: list[int] | None = None


class Completion(BaseModel):
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_errors: list[ToolCallError] = Field(default_factory=list)
    completion_ids: list[int] | None = None
    logprobs: list[float] | None = None
    finish_reason: FinishReason = "stop"
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def failed(self) -> bool:
        return self.finish_reason == "error"


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
