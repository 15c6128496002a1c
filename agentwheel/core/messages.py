"""The typed values every layer exchanges with a chat model: messages, tool calls, sampling
settings, requests and completions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentwheel.core.task import ToolSpec

Role = Literal["system", "user", "assistant", "tool"]
# `over_limit`: a call past a bound on size, nesting or count (agentwheel.llm.tool_calls).
ToolCallErrorKind = Literal[
    "malformed_json", "missing_name", "unknown_tool", "bad_arguments", "over_limit"
]
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
    """How a chat model samples; values no back-end can honour are refused when built."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0)  # 0 = greedy
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0)  # numpy and torch seeding refuse negatives


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
