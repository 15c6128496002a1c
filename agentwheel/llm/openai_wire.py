"""The chat-completions wire format: our requests as JSON bodies, response bodies as
`Completion`s. Pure functions, no I/O; the transport is the `openai` SDK's."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from agentwheel.core.messages import (
    ChatRequest,
    Completion,
    FinishReason,
    Message,
    SamplingParams,
    ToolCall,
    ToolCallError,
)
from agentwheel.core.task import ToolSpec
from agentwheel.llm.tool_calls import OPEN_TAG, check_call, parse_tool_calls


class BadResponse(ValueError):
    """A 2xx body that is not a chat completion."""


def chat_body(
    model: str, request: ChatRequest, params: SamplingParams, extra_body: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON body of one `/chat/completions` request; `extra_body` keys are added last
    and win (server-specific knobs such as vLLM's `top_k`)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": wire_messages(request.messages),
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.seed is not None:
        body["seed"] = params.seed
    if request.tools:
        body["tools"] = [tool.openai_schema() for tool in request.tools]
    body.update(extra_body)
    return body


def wire_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The conversation on the wire. A tool message that answers no call of the assistant
    turn before it (the error reply to a malformed call, which has no id) is sent as a user
    message: OpenAI-compatible servers reject tool messages without a matching call."""
    out: list[dict[str, Any]] = []
    open_ids: set[str] = set()
    for message in messages:
        if message.role == "assistant":
            open_ids = {c.id for c in message.tool_calls}
        if message.role == "tool" and message.tool_call_id not in open_ids:
            out.append({"role": "user", "content": f"[tool error] {message.content}"})
            continue
        out.append(wire_message(message))
    return out


def wire_message(message: Message) -> dict[str, Any]:
    """The message as the OpenAI API wants it: tool-call arguments as JSON strings."""
    out = message.openai_dict()
    for call in out.get("tool_calls", []):
        function = call["function"]
        function["arguments"] = json.dumps(function["arguments"], ensure_ascii=False)
    return out


def parse_chat_response(body: Any, tools: Sequence[ToolSpec]) -> Completion:
    """A chat-completions response body → Completion. Structured `tool_calls` are validated
    against `tools`; without them, Hermes `<tool_call>` blocks in the content are parsed.
    Bad calls become `ToolCallError`s; a body that is no chat completion raises ValueError."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise BadResponse(f"no choices[0].message ({type(exc).__name__}: {exc})") from None
    if not isinstance(message, dict) or not isinstance(choice, dict):
        raise BadResponse("choices[0].message is not an object")
    content = _content_text(message.get("content"))
    calls: list[ToolCall] = []
    errors: list[ToolCallError] = []
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise BadResponse("message.tool_calls is not a list")
    if raw_calls:
        for index, raw in enumerate(raw_calls):
            result = _check_structured_call(raw, tools, index)
            if isinstance(result, ToolCall):
                calls.append(result)
            else:
                errors.append(result)
    elif OPEN_TAG in content:
        # Servers started without a tool parser return the model's Hermes blocks as text.
        _, calls, errors = parse_tool_calls(content, tools)
    finish: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
    usage = body.get("usage") if isinstance(body, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    return Completion(
        text=content,
        tool_calls=calls,
        tool_call_errors=errors,
        finish_reason=finish,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
    )


def _check_structured_call(
    raw: Any, tools: Sequence[ToolSpec], index: int
) -> ToolCall | ToolCallError:
    function = raw.get("function") if isinstance(raw, dict) else None
    raw_text = json.dumps(raw if function is None else function, ensure_ascii=False, default=str)
    if not isinstance(raw, dict) or not isinstance(function, dict):
        return ToolCallError(
            kind="missing_name", detail="a tool call needs a function", raw=raw_text
        )
    name = function.get("name")
    if not isinstance(name, str) or not name:
        return ToolCallError(
            kind="missing_name", detail="a tool call needs function.name", raw=raw_text
        )
    call_id = raw.get("id")
    if not isinstance(call_id, str) or not call_id:
        call_id = f"call_{index}"
    arguments = function.get("arguments")
    # check_call reads a blank string as no arguments.
    return check_call(name, "" if arguments is None else arguments, tools, call_id, raw=raw_text)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # Some APIs answer with content parts; the text parts are the reply.
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    raise BadResponse(f"message.content is {type(content).__name__}, not text")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
