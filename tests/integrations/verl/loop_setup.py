"""Shared settings and the reference run for the verl agent-loop checks: our own runner
against the agent loop's episode, on the same tiny model, seed and limits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from agentwheel.core.messages import SamplingParams
from agentwheel.core.task import Task
from agentwheel.envs.agent import ModelPolicy
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.user import ScriptedUser
from agentwheel.integrations.verl.token_server import ChatModelTokenServer, ServedTokens
from agentwheel.llm.hf import HFChatModel
from agentwheel.settings.runner import RunnerConfig

PROMPT_LENGTH = 384
RESPONSE_LENGTH = 512
MAX_NEW_TOKENS = 24
MAX_AGENT_TURNS = 4
SEED = 7
TEMPERATURE = 1.0
# What verl's rollout worker hands an agent loop (logprobs: rollout.calculate_log_probs).
VERL_SAMPLING = {
    "temperature": TEMPERATURE,
    "top_p": 1.0,
    "top_k": -1,
    "repetition_penalty": 1.0,
    "logprobs": True,
}


def runner_config() -> RunnerConfig:
    return RunnerConfig(
        max_agent_turns=MAX_AGENT_TURNS,
        max_episode_tokens=PROMPT_LENGTH + RESPONSE_LENGTH,
        batch_size=1,
        max_in_flight=1,
    )


def hf_model(tiny_model: Any, tokenizer: Any) -> HFChatModel:
    # kv_reuse off: with it, outputs equal a fresh read only up to rounding, and a
    # sampled id could flip between two runs whose caches hold different prompts.
    return HFChatModel(tiny_model, tokenizer, name="tiny", kv_reuse=False)


def runner_trajectories(model: HFChatModel, tasks: Sequence[Task]) -> list[Trajectory]:
    """Our own runner: the reference the agent loop must reproduce."""
    params = SamplingParams(max_new_tokens=MAX_NEW_TOKENS, temperature=TEMPERATURE, seed=SEED)
    runner = EpisodeRunner(ModelPolicy(model, params), ScriptedUser(), runner_config())
    by_id = {t.task_id: t for t in runner.run(EpisodeSpec(task=t) for t in tasks)}
    return [by_id[t.id] for t in tasks]


class RecordingServer(ChatModelTokenServer):
    """The stand-in server, remembering every generation it served."""

    def __init__(self, model: HFChatModel, seed: int | None = SEED):
        super().__init__(model, seed=seed)
        self.served: list[list[int]] = []
        self.requests: list[dict[str, Any]] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        out: ServedTokens = await super().generate(
            request_id, prompt_ids=prompt_ids, sampling_params=sampling_params, **kwargs
        )
        self.served.append(list(out.token_ids))
        self.requests.append({"request_id": request_id, **sampling_params})
        return out


def gather(*coroutines: Any) -> list[Any]:
    async def all_of() -> list[Any]:
        return list(await asyncio.gather(*coroutines))

    return asyncio.run(all_of())


class OracleTokenModel:
    """The oracle policy as a token chat model: its replies, rendered by the real template,
    are the 'generated' ids. It remembers each prompt's reply, so `ReplayServer` can serve
    exactly those ids to the agent loop: multi-turn episodes with tool and user turns
    between generations, and rewards that pass."""

    name = "oracle-tokens"

    def __init__(self, tokenizer: Any):
        from agentwheel.envs.scripted import OraclePolicy
        from agentwheel.llm.template import ChatTemplateRenderer

        self.policy = OraclePolicy()
        self._renderer = ChatTemplateRenderer(tokenizer)
        self.tasks: dict[tuple[str, str], Task] = {}
        self.views: dict[str, Any] = {}
        self.replies: dict[tuple[int, ...], list[int]] = {}

    @property
    def renderer(self) -> Any:
        return self._renderer

    def chat(self, requests: Sequence[Any], params: SamplingParams) -> list[Any]:
        from agentwheel.envs.agent import EpisodeView
        from agentwheel.llm.hf import completion_from_ids

        out = []
        for request in requests:
            task = self.tasks[(request.messages[0].content, request.messages[1].content)]
            view = self.views.setdefault(task.id, EpisodeView(task=task, trial=0, messages=[]))
            view.messages = list(request.messages)
            text = self.policy.act([view])[0].text
            ids = [*self._renderer.encode(text), self._renderer.end_of_turn_id]
            self.replies[tuple(request.prompt_ids)] = ids
            out.append(completion_from_ids(self._renderer, request, 0, ids, None, "stop"))
        return out


def oracle_trajectories(
    tokenizer: Any, tasks: Sequence[Task], config: RunnerConfig | None = None
) -> tuple[list[Trajectory], OracleTokenModel]:
    """Our runner with the oracle as a token model; returns the trajectories and the model
    (whose `replies` a `ReplayServer` serves)."""
    model = OracleTokenModel(tokenizer)
    model.tasks = {(t.instruction, t.user.request): t for t in tasks}
    assert len(model.tasks) == len(tasks), "tasks must have distinct openings"
    params = SamplingParams(max_new_tokens=MAX_NEW_TOKENS)
    runner = EpisodeRunner(ModelPolicy(model, params), ScriptedUser(), config or runner_config())
    by_id = {t.task_id: t for t in runner.run(EpisodeSpec(task=t) for t in tasks)}
    return [by_id[t.id] for t in tasks], model


class ReplayServer:
    """Serves the oracle's recorded reply to each prompt; a prompt the runner never sent
    (any id different) fails the generation, and so the episode."""

    def __init__(self, replies: dict[tuple[int, ...], list[int]]):
        self.replies = replies

    async def generate(self, request_id, *, prompt_ids, sampling_params, **_):
        return ServedTokens(token_ids=list(self.replies[tuple(prompt_ids)]))
