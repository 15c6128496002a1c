"""Request bodies of the OpenAI chat-completions and completions APIs, validated.

Fields we do not act on (`presence_penalty`, `user`, `logprobs`, ...) are accepted and
ignored, as OpenAI clients send them freely; values we cannot honour (`stream`,
`tool_choice="required"`, `echo`) are refused. Every refusal is an `APIError` whose
message names the field, sent back as an OpenAI-style error body.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Choices per request: each is one more sequence in the batch.
MAX_CHOICES = 32
MAX_STOP_STRINGS = 4


class APIError(Exception):
    """A request the server refuses: HTTP `status` and an OpenAI-style error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0)
    stream: bool = False
    chat_template_kwargs: dict[str, Any] | None = None

    @field_validator("stop")
    @classmethod
    def _few_stop_strings(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings, got {len(stop)}")
        return stop

    @field_validator("stream")
    @classmethod
    def _no_streaming(cls, stream: bool) -> bool:
        if stream:
            raise ValueError("streaming is not supported; send stream=false")
        return stream

    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [s for s in ([self.stop] if isinstance(self.stop, str) else self.stop) if s]


class FunctionCall(BaseModel):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(BaseModel):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def template_dict(self) -> dict[str, Any]:
        """The message as chat templates read it: text content, tool-call arguments as
        objects (templates write them with `tojson`; a string that is no JSON object is
        passed through as written)."""
        out: dict[str, Any] = {
            "role": "system" if self.role == "developer" else self.role,
            "content": self._text(),
        }
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.function.name,
                        "arguments": _arguments_object(call.function.arguments),
                    },
                }
                for call in self.tool_calls
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out

    def _text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


def _arguments_object(arguments: str | dict[str, Any]) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        return arguments
    return parsed if isinstance(parsed, dict) else arguments


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDefinition(BaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class ChatCompletionBody(_Body):
    messages: list[MessageIn] = Field(min_length=1)
    tools: list[ToolDefinition] | None = None
    tool_choice: Any = None
    max_completion_tokens: int | None = Field(None, ge=1)

    @field_validator("tool_choice")
    @classmethod
    def _auto_or_none(cls, choice: Any) -> Any:
        if choice is None or choice in ("auto", "none"):
            return choice
        raise ValueError(
            f"only 'auto' and 'none' are supported, got {json.dumps(choice)[:80]} "
            "(the model decides whether to call a tool)"
        )

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def tool_schemas(self) -> list[dict[str, Any]]:
        return [tool.model_dump(exclude_none=True) for tool in self.tools or []]


class CompletionBody(_Body):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    suffix: str | None = None

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, echo: bool) -> bool:
        if echo:
            raise ValueError("echo is not supported")
        return echo

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, suffix: str | None) -> str | None:
        if suffix:
            raise ValueError("suffix (insertion) is not supported")
        return suffix


BodyT = TypeVar("BodyT", bound=_Body)


def parse_body(kind: type[BodyT], raw: Any) -> BodyT:
    """`raw` (decoded JSON) as a `kind` body, or an APIError naming the first bad field."""
    if not isinstance(raw, dict):
        raise APIError(400, "the request body must be a JSON object")
    try:
        return kind.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        raise APIError(
            400,
            f"{where}: {message}" if where else message,
            param=where,
            code="invalid_value" if first["type"] != "missing" else "missing_field",
        ) from None
