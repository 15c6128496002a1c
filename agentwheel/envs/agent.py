"""The agent side of an episode: what a policy sees, and the adapter from any chat model.

A `Policy` acts on a batch of episode views at once so that model calls are batched
across episodes. `ModelPolicy` wraps a `ChatModel`; when the model has a renderer it
keeps the episode's token trace token-in, token-out: generated ids are stored as they
were sampled, and only the environment's turns are rendered and appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agentwheel.core.messages import ChatRequest, Completion, Message, SamplingParams
from agentwheel.core.task import Task
from agentwheel.envs.trajectory import TokenTrace
from agentwheel.llm.types import ChatModel


@dataclass
class EpisodeView:
    """One episode as seen by the agent and the user simulator."""

    task: Task
    trial: int
    messages: list[Message]
    tokens: TokenTrace | None = None
    # Index into `messages` just after the last assistant turn that was put into `tokens`.
    tokens_synced_to: int = 0
    scratch: dict[str, object] = field(default_factory=dict)

    @property
    def conversation(self) -> list[Message]:
        """The messages after the system prompt."""
        return [m for m in self.messages if m.role != "system"]


class Policy(Protocol):
    name: str

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        """One assistant turn per view (text and/or tool calls)."""
        ...


class ModelPolicy:
    """A policy backed by a chat model (transformers, OpenAI-compatible, ...)."""

    def __init__(self, model: ChatModel, params: SamplingParams, name: str | None = None):
        self.model = model
        self.params = params
        self.name = name or model.name

    @property
    def tracks_tokens(self) -> bool:
        return self.model.renderer is not None

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        requests = [self._request(view) for view in views]
        completions = self.model.chat(requests, self.params)
        for view, completion in zip(views, completions, strict=True):
            self._record_generation(view, completion)
        return completions

    def _request(self, view: EpisodeView) -> ChatRequest:
        request = ChatRequest(messages=view.messages, tools=view.task.tools)
        renderer = self.model.renderer
        if renderer is None:
            return request
        if view.tokens is None:
            view.tokens = TokenTrace()
            view.tokens.add_context(renderer.initial_ids(view.messages, view.task.tools))
        else:
            new_messages = view.messages[view.tokens_synced_to :]
            view.tokens.add_context(renderer.continuation_ids(new_messages))
        view.tokens_synced_to = len(view.messages)
        request.prompt_ids = list(view.tokens.ids)
        return request

    def _record_generation(self, view: EpisodeView, completion: Completion) -> None:
        renderer = self.model.renderer
        if renderer is None or view.tokens is None or completion.failed:
            return
        ids = completion.completion_ids or []
        view.tokens.add_generated(ids, completion.logprobs)
        view.tokens.add_context(renderer.close_turn_ids(ids, completion.finish_reason))
        # The assistant message the runner appends next is already in the trace.
        view.tokens_synced_to = len(view.messages) + 1
