"""One agentwheel episode per verl sample, generated through an async token server.

verl runs agent loops as coroutines on one event loop per worker; our episode runner is
synchronous. So each episode runs our own `EpisodeRunner` (task, tool back-end, user
simulator, turn and token limits, reward: nothing re-implemented) on a worker thread, with
a `ServerChatModel` whose every generation is a coroutine handed back to the event loop:
verl's server manager (vLLM/SGLang) or a stand-in. Token-in, token-out: the renderer turns
only the environment's turns into ids; generated ids are kept as the server returned them.

`verl_episode` lays a finished trajectory out as verl trains on it: the opening prompt,
then the response (generated ids with mask 1, user/tool ids with mask 0), the reward and
its components.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from pydantic import BaseModel

from agentwheel.core.messages import ChatRequest, Completion, FinishReason, SamplingParams
from agentwheel.core.task import Task
from agentwheel.envs.agent import ModelPolicy
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.stance import stance_shaped_reward
from agentwheel.envs.tools import ToolSimulator
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.user import UserSimulator
from agentwheel.llm.hf import completion_from_ids
from agentwheel.llm.template import ChatTemplateRenderer
from agentwheel.settings.runner import RunnerConfig

REWARD_PREFIX = "agentwheel/"


class GeneratedTokens(Protocol):
    """What a token server returns (verl's `TokenOutput` has these fields)."""

    token_ids: list[int]
    log_probs: list[float] | None
    stop_reason: str | None


class TokenServer(Protocol):
    """The part of verl's server manager (`LLMServerClient`) an episode uses."""

    async def generate(
        self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any]
    ) -> GeneratedTokens: ...


class ServerChatModel:
    """A `ChatModel` whose generations run on an async `TokenServer`.

    `chat` is called from an episode thread; each request becomes a coroutine on `loop`
    (the event loop verl's server manager lives on) and the thread waits for it.
    `sampling_params` are verl's (temperature, top_p, top_k, logprobs, ...); each call adds
    `max_tokens` from the policy's `max_new_tokens`. One `request_id` for the whole
    episode, so a server that routes by it keeps the episode on one replica (prefix cache).
    """

    def __init__(
        self,
        server: TokenServer,
        loop: asyncio.AbstractEventLoop,
        renderer: ChatTemplateRenderer,
        sampling_params: Mapping[str, Any],
        request_id: str,
        stop_ids: Collection[int],
        name: str = "verl",
    ):
        self.server = server
        self.loop = loop
        self._renderer = renderer
        self.sampling_params = dict(sampling_params)
        self.request_id = request_id
        self.stop_ids = frozenset(stop_ids)
        self.name = name

    @property
    def renderer(self) -> ChatTemplateRenderer:
        return self._renderer

    def chat(self, requests: Sequence[ChatRequest], params: SamplingParams) -> list[Completion]:
        futures = [
            asyncio.run_coroutine_threadsafe(self._generate(request, params), self.loop)
            for request in requests
        ]
        return [future.result() for future in futures]

    async def _generate(self, request: ChatRequest, params: SamplingParams) -> Completion:
        if request.prompt_ids is None:
            raise ValueError("ServerChatModel continues prompt ids only (it has a renderer)")
        prompt = list(request.prompt_ids)
        sampling = {**self.sampling_params, "max_tokens": params.max_new_tokens}
        try:
            out = await self.server.generate(
                self.request_id, prompt_ids=prompt, sampling_params=sampling
            )
        # A failed generation ends this episode as a model error (reward 0), like any chat
        # back-end's failed request; it must not take the other episodes of the batch down.
        except Exception as exc:
            return Completion(
                finish_reason="error",
                error=f"token server: {type(exc).__name__}: {exc}",
                prompt_tokens=len(prompt),
            )
        if out.stop_reason == "aborted":
            return Completion(
                finish_reason="error", error="token server aborted", prompt_tokens=len(prompt)
            )
        ids = list(out.token_ids)
        finish: FinishReason = "stop" if ids and ids[-1] in self.stop_ids else "length"
        logprobs = list(out.log_probs) if out.log_probs else None
        if logprobs is not None and len(logprobs) != len(ids):
            logprobs = None
        return completion_from_ids(self._renderer, request, len(prompt), ids, logprobs, finish)


def run_episode(
    task: Task,
    model: ServerChatModel,
    user: UserSimulator,
    config: RunnerConfig,
    max_new_tokens: int,
    tool_simulator: ToolSimulator | None = None,
    trial: int = 0,
) -> Trajectory:
    """One episode of `task` by our own runner, the policy generating through `model`.
    Blocks until it ends: call it from a thread, not from `model.loop`."""
    params = SamplingParams(
        max_new_tokens=max_new_tokens,
        temperature=max(0.0, float(model.sampling_params.get("temperature", 1.0))),
    )
    policy = ModelPolicy(model, params, name=model.name)
    runner = EpisodeRunner(policy, user, config, tool_simulator)
    return runner.run([EpisodeSpec(task=task, trial=trial)])[0]


class VerlEpisode(BaseModel):
    """A trajectory as verl's `AgentLoopOutput` wants it."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    response_logprobs: list[float] | None
    reward_score: float
    reward_extra_info: dict[str, float]
    num_turns: int
    termination: str
    truncated: bool


def reward_components(trajectory: Trajectory) -> dict[str, float]:
    """The reward and what decided it, as numbers (the same keys for every episode, as
    verl's `reward_extra_info` requires)."""
    reward = trajectory.reward
    counts = trajectory.counts
    return {
        f"{REWARD_PREFIX}passed": float(reward.passed),
        f"{REWARD_PREFIX}state_matches": float(reward.state_matches),
        f"{REWARD_PREFIX}hack_action_ran": float(reward.hack_action_ran),
        f"{REWARD_PREFIX}signals_ok": float(
            all(reward.signals_present.get(s, False) for s in reward.signals_required)
        ),
        f"{REWARD_PREFIX}outputs_missing": float(len(reward.outputs_missing)),
        f"{REWARD_PREFIX}facts_asked_again": float(len(reward.facts_asked_again)),
        f"{REWARD_PREFIX}agent_turns": float(counts.agent_turns),
        f"{REWARD_PREFIX}tool_calls": float(counts.tool_calls),
        f"{REWARD_PREFIX}invalid_tool_calls": float(sum(counts.invalid_tool_calls.values())),
        f"{REWARD_PREFIX}ended_by_user": float(trajectory.termination == "user_ended"),
    }


def verl_episode(
    trajectory: Trajectory,
    prompt_length: int,
    response_length: int,
    with_logprobs: bool,
    wrong_stance_penalty: float = 0.0,
) -> VerlEpisode:
    """Split the episode's token trace into verl's prompt and response.

    The prompt is everything before the first generated id (the opening prompt); the
    response is the rest, cut to `response_length` (the reward still scores the whole
    episode, as verl's own tool loop does). A prompt longer than `prompt_length` is an
    error: cutting it would train on ids the policy never saw. The reward score is the
    training reward (`envs.stance.stance_shaped_reward`; penalty 0: the verdict).
    """
    trace = trajectory.tokens
    if trace is None:
        raise ValueError("the episode has no token trace (the policy had no renderer)")
    first = trace.loss_mask.index(1) if 1 in trace.loss_mask else len(trace.ids)
    if first > prompt_length:
        raise ValueError(
            f"task {trajectory.task_id}: the opening prompt has {first} tokens, more than "
            f"rollout.prompt_length={prompt_length}; raise prompt_length (the prompt holds "
            "the instruction and the tool schemas)"
        )
    end = first + response_length
    components = reward_components(trajectory)
    components[f"{REWARD_PREFIX}truncated"] = float(len(trace.ids) > end)
    return VerlEpisode(
        prompt_ids=trace.ids[:first],
        response_ids=trace.ids[first:end],
        response_mask=trace.loss_mask[first:end],
        response_logprobs=trace.logprobs[first:end] if with_logprobs else None,
        reward_score=stance_shaped_reward(trajectory, wrong_stance_penalty),
        reward_extra_info=components,
        num_turns=sum(1 for m in trajectory.messages if m.role != "system"),
        termination=trajectory.termination,
        truncated=len(trace.ids) > end,
    )
