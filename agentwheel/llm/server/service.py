"""What the server does with a valid request: prompt ids, one batched model call, a reply.

Prompts are rendered with the model's own renderer (its chat template and template
keywords, plus any `chat_template_kwargs` of the request), so a served checkpoint is
prompted exactly as `hf:<checkpoint>` prompts it in-process. Tool calls are read from the
generated text with agentwheel's Hermes parser (`agentwheel.llm.tool_calls`); a reply
whose tool-call blocks do not all parse is returned as plain content, as vLLM's `hermes`
parser does, so a client sees exactly what the model wrote.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

from agentwheel.core.messages import ChatRequest, Completion, SamplingParams
from agentwheel.llm.server.batcher import RequestBatcher
from agentwheel.llm.server.schema import (
    APIError,
    ChatCompletionBody,
    CompletionBody,
    parse_body,
)
from agentwheel.llm.template import ChatTemplateRenderer, TemplateRenderError
from agentwheel.llm.tool_calls import ModelJsonError, load_model_json, split_tool_calls
from agentwheel.llm.types import ChatModel

# OpenAI's defaults where a request leaves them out.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_COMPLETION_TOKENS = 16


class ChatService:
    """The OpenAI API over one token chat model (one with a `ChatTemplateRenderer`).

    `chat` and `complete` take a decoded JSON body and return the reply body, or raise
    `APIError` (a 4xx for the client's mistakes). They are called from many threads at
    once; model calls go through one `RequestBatcher`.
    """

    def __init__(
        self,
        model: ChatModel,
        model_name: str,
        max_batch_size: int = 32,
        default_max_tokens: int = 512,
        gather_s: float = 0.005,
        max_tokens_cap: int | None = None,
    ):
        renderer = model.renderer
        if not isinstance(renderer, ChatTemplateRenderer):
            raise TypeError(
                f"{model.name} has no tokenizer-backed renderer; serve an hf: model "
                "(vllm: models are served by vLLM's own server)"
            )
        self.renderer: ChatTemplateRenderer = renderer
        self.model_name = model_name
        self.default_max_tokens = default_max_tokens
        # Clients such as BFCL's handler ask for the whole context left (thousands of
        # tokens); on a CPU a rambling small model then takes minutes per reply.
        self.max_tokens_cap = max_tokens_cap
        self.max_context: int | None = getattr(model, "max_context", None)
        self.batcher = RequestBatcher(model, max_batch_size=max_batch_size, gather_s=gather_s)
        self.created = int(time.time())

    def close(self) -> None:
        self.batcher.close()

    # Endpoints ---------------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [self._model_card()]}

    def model(self, name: str) -> dict[str, Any]:
        self._check_model(name)
        return self._model_card()

    def chat(self, raw: Any) -> dict[str, Any]:
        body = parse_body(ChatCompletionBody, raw)
        self._check_model(body.model)
        prompt = self._chat_prompt(body)
        params = self._params(body, body.token_limit(), len(prompt))
        requests = [ChatRequest(messages=[], prompt_ids=prompt)] * body.n
        completions = self._generate(requests, params)
        parse_tools = bool(body.tools) and body.tool_choice != "none"
        choices = [
            _chat_choice(i, c, body.stop_strings(), parse_tools) for i, c in enumerate(completions)
        ]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": _usage(len(prompt), completions),
        }

    def complete(self, raw: Any) -> dict[str, Any]:
        body = parse_body(CompletionBody, raw)
        self._check_model(body.model)
        prompts = [self._checked_prompt(ids) for ids in self._completion_prompts(body.prompt)]
        longest = max(len(ids) for ids in prompts)
        params = self._params(body, body.max_tokens or DEFAULT_COMPLETION_TOKENS, longest)
        requests = [
            ChatRequest(messages=[], prompt_ids=ids) for ids in prompts for _ in range(body.n)
        ]
        completions = self._generate(requests, params)
        choices = []
        for index, completion in enumerate(completions):
            text, finish = _apply_stop(completion, body.stop_strings())
            choices.append(
                {"index": index, "text": text, "finish_reason": finish, "logprobs": None}
            )
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": _usage(sum(len(ids) for ids in prompts) * body.n, completions),
        }

    # Steps ---------------------------------------------------------------------------------

    def _model_card(self) -> dict[str, Any]:
        return {
            "id": self.model_name,
            "object": "model",
            "created": self.created,
            "owned_by": "agentwheel",
        }

    def _check_model(self, name: str) -> None:
        if name != self.model_name:
            raise APIError(
                404,
                f"the model {name!r} does not exist here; this server serves {self.model_name!r}",
                param="model",
                code="model_not_found",
            )

    def _chat_prompt(self, body: ChatCompletionBody) -> list[int]:
        messages = [message.template_dict() for message in body.messages]
        try:
            text = self.renderer.render_openai(
                messages,
                body.tool_schemas(),
                add_generation_prompt=True,
                template_kwargs=body.chat_template_kwargs,
            )
        except (jinja2.TemplateError, TemplateRenderError, TypeError, ValueError) as exc:
            raise APIError(
                400, f"the chat template cannot render these messages: {exc}", param="messages"
            ) from None
        return self._checked_prompt(self.renderer.encode(text))

    def _completion_prompts(
        self, prompt: str | list[str] | list[int] | list[list[int]]
    ) -> list[list[int]]:
        if isinstance(prompt, str):
            return [self.renderer.encode(prompt)]
        if all(isinstance(p, str) for p in prompt):
            return [self.renderer.encode(p) for p in prompt]  # type: ignore[arg-type]
        if all(isinstance(p, int) for p in prompt):
            return [list(prompt)]  # type: ignore[arg-type]
        return [list(p) for p in prompt]  # type: ignore[arg-type]

    def _checked_prompt(self, ids: Sequence[int]) -> list[int]:
        if not ids:
            raise APIError(400, "the prompt is empty", param="prompt")
        vocab = len(self.renderer.tokenizer)
        if any(not 0 <= i < vocab for i in ids):
            raise APIError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
        if self.max_context is not None and len(ids) >= self.max_context:
            raise APIError(
                400,
                f"the prompt has {len(ids)} tokens; this model's context is {self.max_context} "
                "(room for at least one new token is needed)",
                param="messages",
                code="context_length_exceeded",
            )
        return list(ids)

    def _params(self, body: Any, max_tokens: int | None, prompt_tokens: int) -> SamplingParams:
        limit = max_tokens or self.default_max_tokens
        if self.max_tokens_cap is not None:
            limit = min(limit, self.max_tokens_cap)
        if self.max_context is not None:
            limit = max(1, min(limit, self.max_context - prompt_tokens))
        return SamplingParams(
            max_new_tokens=limit,
            temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            seed=body.seed,
        )

    def _generate(self, requests: list[ChatRequest], params: SamplingParams) -> list[Completion]:
        completions = self.batcher.submit(requests, params)
        failed = next((c for c in completions if c.failed), None)
        if failed is not None:
            raise APIError(500, f"generation failed: {failed.error}", kind="server_error")
        return completions


def _apply_stop(completion: Completion, stop: Sequence[str]) -> tuple[str, str]:
    """The text up to the first stop string (excluded) and the OpenAI finish reason.
    Stop strings are applied to the finished text: generation itself stops at the
    end-of-turn token or the token limit."""
    text = completion.text
    cuts = [text.find(s) for s in stop if s in text]
    if cuts:
        return text[: min(cuts)], "stop"
    return text, "length" if completion.finish_reason == "length" else "stop"


def tool_calls_in(text: str) -> tuple[str, list[dict[str, Any]]] | None:
    """`(prose, calls)` for text whose Hermes tool-call blocks all parse (calls in the
    OpenAI format, arguments as a JSON string); None when a block does not parse."""
    prose, bodies = split_tool_calls(text)
    calls = []
    for body in bodies:
        try:
            payload = load_model_json(body)
        except ModelJsonError:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            return None
        arguments = payload.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = load_model_json(arguments) if arguments.strip() else {}
            except ModelJsonError:
                return None
        if not isinstance(arguments, dict):
            return None
        calls.append(
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": payload["name"],
                    "arguments": json.dumps(arguments, ensure_ascii=False),
                },
            }
        )
    return prose, calls


def _chat_choice(
    index: int, completion: Completion, stop: Sequence[str], parse_tools: bool
) -> dict[str, Any]:
    text, finish = _apply_stop(completion, stop)
    message: dict[str, Any] = {"role": "assistant", "content": text}
    parsed = tool_calls_in(text) if parse_tools else None
    if parsed is not None and parsed[1]:
        prose, calls = parsed
        message = {"role": "assistant", "content": prose or None, "tool_calls": calls}
        finish = "tool_calls"
    return {"index": index, "message": message, "finish_reason": finish, "logprobs": None}


def _usage(prompt_tokens: int, completions: Sequence[Completion]) -> Mapping[str, int]:
    generated = sum(c.completion_tokens for c in completions)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": prompt_tokens + generated,
    }
