"""Scripted chat models for the reasoning flywheel tests: ordinary implementations of the
`ChatModel` protocol whose replies are computed from the request."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from agentwheel.core.messages import ChatRequest, Completion, SamplingParams
from agentwheel.llm.types import Renderer

Reply = Callable[[ChatRequest], Completion | str]


class ScriptedChat:
    """Answers each request with `reply(request)`; records every request it saw."""

    def __init__(self, name: str, reply: Reply):
        self.name = name
        self._reply = reply
        self.requests: list[ChatRequest] = []
        self.calls = 0

    @property
    def renderer(self) -> Renderer | None:
        return None

    def chat(self, requests: Sequence[ChatRequest], params: SamplingParams) -> list[Completion]:
        self.calls += 1
        self.requests.extend(requests)
        out = []
        for request in requests:
            reply = self._reply(request)
            out.append(Completion(text=reply) if isinstance(reply, str) else reply)
        return out


def last_user(request: ChatRequest) -> str:
    return next(m.content for m in reversed(request.messages) if m.role == "user")


def failed(error: str = "timeout after 30s") -> Completion:
    return Completion(finish_reason="error", error=error)


_EXPRESSION = re.compile(r"arithmetic problem: ([\d\s+\-]+)=")


class CountingArithmeticPolicy(ScriptedChat):
    """Solves chain_sum problems, less often the more terms and distractor sentences.

    Of the n identical prompts in a batch, the first `quota` are answered correctly
    (in `\\boxed{}`), the rest are off by one: quota = 4 - terms - distractors, at least 0.
    """

    def __init__(self) -> None:
        super().__init__("counting-arithmetic", self._answer)
        self._seen: dict[str, int] = {}

    def chat(self, requests: Sequence[ChatRequest], params: SamplingParams) -> list[Completion]:
        self._seen = {}
        return super().chat(requests, params)

    def _answer(self, request: ChatRequest) -> str:
        prompt = last_user(request)
        match = _EXPRESSION.search(prompt)
        if match is None:
            return "I am not sure."
        expression = match.group(1)
        value = eval(expression)  # digits, spaces, + and - only
        terms = len(re.findall(r"\d+", expression))
        distractors = prompt[: match.start()].count(". ")
        quota = max(0, 4 - terms - distractors)
        k = self._seen.get(prompt, 0)
        self._seen[prompt] = k + 1
        return f"Adding up: \\boxed{{{value if k < quota else value + 1}}}"
