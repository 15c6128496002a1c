"""The episode runner: agent ↔ simulated user ↔ tools, many episodes in flight.

Episodes advance in lock-step phases so that every model call is one batch across all
episodes waiting on the agent (and likewise for an LLM user). An episode ends only when
the user simulator ends it, or a turn/token limit or a model failure stops it; the reward
is computed from the environment's state, never from what the agent claims.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agentwheel.core.messages import Completion, Message, ToolCall, ToolCallError
from agentwheel.core.task import Task
from agentwheel.envs.agent import EpisodeView, Policy
from agentwheel.envs.reward import compute_reward
from agentwheel.envs.tools import (
    Backend,
    ToolBackend,
    ToolSimulator,
    is_tool_error,
    make_backend,
    resolve_backend,
)
from agentwheel.envs.trajectory import (
    EpisodeCounts,
    EpisodeTimings,
    Termination,
    Trajectory,
)
from agentwheel.envs.user import UserSimulator, UserTurn
from agentwheel.llm.tool_calls import (
    MAX_CALLS_PER_REPLY,
    MAX_REPLY_CHARS,
    cap_reply,
    check_call,
    split_tool_calls,
    utf8_safe,
)
from agentwheel.settings.runner import RunnerConfig


@dataclass(frozen=True)
class EpisodeSpec:
    task: Task
    trial: int = 0


@dataclass
class _Episode:
    view: EpisodeView
    tools: ToolBackend
    backend: Backend
    phase: Literal["agent", "user", "done"] = "agent"
    termination: Termination | None = None
    error: str | None = None
    counts: EpisodeCounts = field(default_factory=EpisodeCounts)
    timings: EpisodeTimings = field(default_factory=EpisodeTimings)
    started: float = field(default_factory=time.perf_counter)

    def end(self, why: Termination, error: str | None = None) -> None:
        self.phase = "done"
        self.termination = why
        self.error = error


def tool_message(call_id: str, name: str, output: Any) -> Message:
    # Outputs can carry model text (a simulated answer, an error quoting the call).
    return Message(
        role="tool",
        content=utf8_safe(json.dumps(output, ensure_ascii=False, default=str)),
        tool_call_id=call_id,
        name=name,
    )


def invalid_call_output(error: ToolCallError) -> dict[str, Any]:
    return {"error": "invalid_tool_call", "detail": f"{error.kind}: {error.detail}"}


def checked_calls(
    task: Task, completion: Completion, turn: int
) -> tuple[list[ToolCall], list[ToolCallError]]:
    """The turn's calls, checked again against the task's tools and the bounds (a chat
    model need not have checked them), and its invalid calls; at most
    `MAX_CALLS_PER_REPLY` of each, the rest reported as one `over_limit` error."""
    calls: list[ToolCall] = []
    errors = list(completion.tool_call_errors[:MAX_CALLS_PER_REPLY])
    for i, call in enumerate(completion.tool_calls[:MAX_CALLS_PER_REPLY]):
        result = check_call(call.name, call.arguments, task.tools, f"call_{turn}_{i}")
        if isinstance(result, ToolCall):
            calls.append(result)
        else:
            errors.append(result)
    dropped = max(0, len(completion.tool_calls) - MAX_CALLS_PER_REPLY) + max(
        0, len(completion.tool_call_errors) - MAX_CALLS_PER_REPLY
    )
    if dropped:
        errors.append(
            ToolCallError(
                kind="over_limit",
                detail=f"{dropped} tool call(s) past the first {MAX_CALLS_PER_REPLY} were not run",
            )
        )
    return calls, errors


class EpisodeRunner:
    def __init__(
        self,
        policy: Policy,
        user: UserSimulator,
        config: RunnerConfig | None = None,
        tool_simulator: ToolSimulator | None = None,
    ):
        self.policy = policy
        self.user = user
        self.config = config or RunnerConfig()
        self.tool_simulator = tool_simulator

    def run(
        self,
        specs: Iterable[EpisodeSpec],
        on_finished: Callable[[Trajectory], None] | None = None,
    ) -> list[Trajectory]:
        """Run every episode to its end; `on_finished` sees each trajectory as it ends."""
        pending = list(specs)
        pending.reverse()
        active: list[_Episode] = []
        results: list[Trajectory] = []
        while pending or active:
            while pending and len(active) < self.config.max_in_flight:
                active.append(self._start(pending.pop()))
            self._agent_phase([e for e in active if e.phase == "agent"])
            self._user_phase([e for e in active if e.phase == "user"])
            still_running = []
            for episode in active:
                if episode.phase == "done":
                    trajectory = self._finish(episode)
                    results.append(trajectory)
                    if on_finished is not None:
                        on_finished(trajectory)
                else:
                    still_running.append(episode)
            active = still_running
        return results

    def _start(self, spec: EpisodeSpec) -> _Episode:
        task = spec.task
        backend = resolve_backend(task, self.config.backend)
        messages = [
            Message(role="system", content=task.instruction),
            Message(role="user", content=self.user.opening(task)),
        ]
        view = EpisodeView(task=task, trial=spec.trial, messages=messages)
        tools = make_backend(task, backend, self.tool_simulator)
        return _Episode(view=view, tools=tools, backend=backend)

    def _agent_phase(self, episodes: Sequence[_Episode]) -> None:
        ready = []
        for episode in episodes:
            if episode.counts.agent_turns >= self.config.max_agent_turns:
                episode.end("turn_limit")
            elif (
                episode.view.tokens is not None
                and len(episode.view.tokens) > self.config.max_episode_tokens
            ):
                episode.end("token_limit")
            else:
                ready.append(episode)
        for batch in _chunks(ready, self.config.batch_size):
            start = time.perf_counter()
            completions = self.policy.act([e.view for e in batch])
            share = (time.perf_counter() - start) / len(batch)
            for episode, completion in zip(batch, completions, strict=True):
                episode.timings.model_s += share
                self._apply_agent_turn(episode, completion)

    def _apply_agent_turn(self, episode: _Episode, completion: Completion) -> None:
        counts = episode.counts
        counts.agent_turns += 1
        if completion.failed:
            episode.end("model_error", completion.error or "model call failed")
            return
        counts.generated_tokens += completion.completion_tokens or len(
            completion.completion_ids or []
        )
        turn = counts.agent_turns
        calls, errors = checked_calls(episode.view.task, completion, turn)
        has_calls = bool(calls or errors)
        if len(completion.text) > MAX_REPLY_CHARS:
            counts.replies_cut += 1
        text = cap_reply(completion.text)
        content = split_tool_calls(text)[0] if has_calls else text.strip()
        view = episode.view
        view.messages.append(Message(role="assistant", content=content, tool_calls=calls))
        start = time.perf_counter()
        for call in calls:
            spec = view.task.tool(call.name)
            assert spec is not None, "checked_calls keeps only calls to the task's tools"
            output = episode.tools.call(spec, call.arguments)
            counts.tool_calls += 1
            if is_tool_error(output):
                counts.tool_errors[output["error"]] = counts.tool_errors.get(output["error"], 0) + 1
            view.messages.append(tool_message(call.id, call.name, output))
        for i, error in enumerate(errors):
            counts.invalid_tool_calls[error.kind] = counts.invalid_tool_calls.get(error.kind, 0) + 1
            name = error.tool or "invalid_tool_call"
            view.messages.append(
                tool_message(f"invalid_{turn}_{i}", name, invalid_call_output(error))
            )
        episode.timings.env_s += time.perf_counter() - start
        episode.phase = "agent" if has_calls else "user"

    def _user_phase(self, episodes: Sequence[_Episode]) -> None:
        for batch in _chunks(list(episodes), self.config.batch_size):
            start = time.perf_counter()
            replies = self.user.reply([e.view for e in batch])
            share = (time.perf_counter() - start) / len(batch)
            for episode, reply in zip(batch, replies, strict=True):
                episode.timings.user_s += share
                self._apply_user_turn(episode, reply)

    @staticmethod
    def _apply_user_turn(episode: _Episode, reply: UserTurn) -> None:
        episode.counts.user_turns += 1
        if reply.error is not None:
            episode.end("user_error", reply.error)
            return
        if reply.content:
            episode.view.messages.append(Message(role="user", content=reply.content))
        if reply.done:
            episode.end("user_ended")
        else:
            episode.phase = "agent"

    def _finish(self, episode: _Episode) -> Trajectory:
        view = episode.view
        start = time.perf_counter()
        reward = compute_reward(view.task, episode.tools, episode.backend, view.messages)
        if episode.termination in ("model_error", "user_error"):
            reward.passed = False
        close = getattr(episode.tools, "close", None)
        if close is not None:
            close()
        episode.timings.env_s += time.perf_counter() - start
        episode.timings.total_s = time.perf_counter() - episode.started
        assert episode.termination is not None
        return Trajectory(
            task_id=view.task.id,
            trial=view.trial,
            domain=view.task.domain,
            branch_kind=view.task.branch_kind,
            policy=self.policy.name,
            backend=episode.backend,
            messages=view.messages,
            tokens=view.tokens,
            reward=reward,
            termination=episode.termination,
            error=episode.error,
            counts=episode.counts,
            timings=episode.timings,
        )


def _chunks(items: Sequence[_Episode], size: int) -> list[Sequence[_Episode]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
