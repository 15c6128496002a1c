"""The verl agent loop that runs agentwheel episodes: `agentwheel_agent`.

verl 0.9 picks an agent loop per sample by the dataset's `agent_name` column and builds it
with hydra from a registry entry, in every rollout worker. Importing this module registers
`AgentwheelAgentLoop`; workers that do not import it find it through the loop config
file `agent_loops.yaml` beside it (`actor_rollout_ref.rollout.agent.agent_loop_config_path`),
whose keys also set the loop's options: `user`, `tool_simulator`, `max_agent_turns`,
`max_new_tokens`, `backend`, `wrong_stance_penalty`.

Each sample is one episode of the task carried in the row (`extra_info.task_json`), run
by our own runner on a thread while its generations go through verl's server manager
(see `episode`). The reward is ours, from the environment's state: `reward_score` is set,
so verl's reward manager is never asked to score these rows.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, Literal
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    _agent_loop_registry,
    register,
)

from agentwheel.envs.tool_simulator import LLMToolSimulator
from agentwheel.envs.tools import Backend, ToolSimulator
from agentwheel.envs.user import UserSimulator
from agentwheel.export.datasets import VERL_AGENT_NAME, task_from_verl_extra_info
from agentwheel.integrations.verl.episode import ServerChatModel, run_episode, verl_episode
from agentwheel.llm.hf import stop_token_ids
from agentwheel.llm.template import ChatTemplateRenderer
from agentwheel.settings.runner import RunnerConfig
from agentwheel.specs import load_chat_model, load_user

EPISODE_THREADS = 256
"""Episodes in flight per worker: each thread mostly waits for its generation."""

_pool: ThreadPoolExecutor | None = None
_renderers: dict[tuple[int, str], ChatTemplateRenderer] = {}
_renderers_lock = threading.Lock()


def episode_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(EPISODE_THREADS, thread_name_prefix="agentwheel-episode")
    return _pool


def renderer_for(tokenizer: Any, template_kwargs: dict[str, Any]) -> ChatTemplateRenderer:
    """One renderer per tokenizer and template options (verl builds a loop per sample)."""
    key = (id(tokenizer), repr(sorted(template_kwargs.items())))
    with _renderers_lock:
        if key not in _renderers:
            _renderers[key] = ChatTemplateRenderer(tokenizer, template_kwargs=template_kwargs)
        return _renderers[key]


@cache
def user_for(spec: str) -> UserSimulator:
    return load_user(spec)


@cache
def tool_simulator_for(spec: str) -> ToolSimulator:
    return LLMToolSimulator(load_chat_model(spec))


class AgentwheelAgentLoop(AgentLoopBase):
    """One agentwheel episode per sample: our task, tools, user simulator and reward.

    Options (keys of the loop's entry in `agent_loops.yaml`): `user` — `scripted` or
    `llm:<model spec>`; `tool_simulator` — a model spec answering off-script calls in the
    mock back-end (none: a typed error); `max_agent_turns`; `max_new_tokens` per agent
    turn; `backend` — `auto`, `mock` or `sqlite`; `wrong_stance_penalty` — the training
    reward's (`grpo.wrong_stance_penalty`; 0: the environment's verdict). An episode
    stops once its ids exceed `prompt_length + response_length`; the response is cut to
    `response_length`.
    """

    def __init__(
        self,
        *args: Any,
        user: str = "scripted",
        tool_simulator: str | None = None,
        max_agent_turns: int = 16,
        max_new_tokens: int = 1024,
        backend: Backend | Literal["auto"] = "auto",
        wrong_stance_penalty: float = 0.0,
        **kwargs: Any,
    ):
        kwargs.pop("name", None)
        super().__init__(*args, **kwargs)
        self.user_spec = user
        self.tool_simulator_spec = tool_simulator
        self.max_new_tokens = int(max_new_tokens)
        self.wrong_stance_penalty = float(wrong_stance_penalty)
        self.prompt_length = int(self.rollout_config.prompt_length)
        self.response_length = int(self.rollout_config.response_length)
        self.runner_config = RunnerConfig(
            max_agent_turns=int(max_agent_turns),
            max_episode_tokens=self.prompt_length + self.response_length,
            batch_size=1,
            max_in_flight=1,
            backend=backend,
        )
        self.renderer = renderer_for(self.tokenizer, dict(self.apply_chat_template_kwargs))

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        task = task_from_verl_extra_info(kwargs["extra_info"])
        model = ServerChatModel(
            self.server_manager,
            asyncio.get_running_loop(),
            self.renderer,
            sampling_params,
            request_id=uuid4().hex,
            stop_ids=stop_token_ids(self.renderer.end_of_turn_id, self.tokenizer.eos_token_id),
        )
        user = user_for(self.user_spec)
        simulator = (
            tool_simulator_for(self.tool_simulator_spec) if self.tool_simulator_spec else None
        )
        trajectory = await asyncio.get_running_loop().run_in_executor(
            episode_pool(),
            lambda: run_episode(
                task, model, user, self.runner_config, self.max_new_tokens, simulator
            ),
        )
        episode = verl_episode(
            trajectory,
            self.prompt_length,
            self.response_length,
            with_logprobs=bool(sampling_params.get("logprobs")),
            wrong_stance_penalty=self.wrong_stance_penalty,
        )
        timings = trajectory.timings
        return AgentLoopOutput(
            prompt_ids=episode.prompt_ids,
            response_ids=episode.response_ids,
            response_mask=episode.response_mask,
            response_logprobs=episode.response_logprobs,
            reward_score=episode.reward_score,
            num_turns=episode.num_turns,
            metrics=AgentLoopMetrics(
                generate_sequences=timings.model_s,
                tool_calls=timings.env_s,
                compute_score=0.0,
            ),
            extra_fields={
                "reward_extra_info": episode.reward_extra_info,
                "turn_scores": [],
                "tool_rewards": [],
                "agentwheel_task_id": task.id,
                "agentwheel_termination": episode.termination,
            },
        )


# A worker reads the loop config file (with our options) into verl's registry before its
# first sample imports this module; registering unconditionally here would then replace
# that entry with a bare one, and every later sample would run on default options.
if VERL_AGENT_NAME not in _agent_loop_registry:
    register(VERL_AGENT_NAME)(AgentwheelAgentLoop)
