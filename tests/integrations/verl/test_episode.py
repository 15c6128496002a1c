"""The agent loop's episode (no verl needed): generation through an async token server
backed by the tiny model gives, for the same seed, the ids, mask, log-probs and reward of
our own runner."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from itertools import chain

import pytest

from agentwheel.core.task import Task
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.user import ScriptedUser
from agentwheel.integrations.verl.episode import (
    ServerChatModel,
    VerlEpisode,
    reward_components,
    run_episode,
    verl_episode,
)
from agentwheel.llm.hf import stop_token_ids
from agentwheel.llm.template import ChatTemplateRenderer
from agentwheel.settings.runner import RunnerConfig
from tests.envs.sample_tasks import ALL_KINDS, make_task
from tests.integrations.verl.loop_setup import (
    MAX_NEW_TOKENS,
    PROMPT_LENGTH,
    RESPONSE_LENGTH,
    VERL_SAMPLING,
    RecordingServer,
    ReplayServer,
    gather,
    hf_model,
    oracle_trajectories,
    runner_config,
    runner_trajectories,
)

TASKS = [make_task(kind) for kind in ALL_KINDS]


async def loop_episode(
    server, renderer: ChatTemplateRenderer, task: Task, config: RunnerConfig | None = None
) -> tuple[Trajectory, VerlEpisode]:
    """What `AgentwheelAgentLoop.run` does, without verl's base class."""
    loop = asyncio.get_running_loop()
    model = ServerChatModel(
        server,
        loop,
        renderer,
        VERL_SAMPLING,
        request_id=f"episode-{task.id}",
        stop_ids=stop_token_ids(renderer.end_of_turn_id, renderer.tokenizer.eos_token_id),
    )
    trajectory = await loop.run_in_executor(
        None,
        lambda: run_episode(task, model, ScriptedUser(), config or runner_config(), MAX_NEW_TOKENS),
    )
    return trajectory, verl_episode(trajectory, PROMPT_LENGTH, RESPONSE_LENGTH, True)


@pytest.fixture(scope="module")
def reference(tiny_model, tokenizer) -> list[Trajectory]:
    return runner_trajectories(hf_model(tiny_model, tokenizer), TASKS)


@pytest.fixture(scope="module")
def looped(tiny_model, tokenizer):
    server = RecordingServer(hf_model(tiny_model, tokenizer))
    renderer = ChatTemplateRenderer(tokenizer)
    results = gather(*(loop_episode(server, renderer, task) for task in TASKS))
    return server, results


def test_loop_episodes_equal_our_runner_id_for_id(reference, looped):
    _, results = looped
    for ref, (_, episode) in zip(reference, results, strict=True):
        trace = ref.tokens
        assert trace is not None and episode.truncated is False
        prompt = len(episode.prompt_ids)
        assert episode.prompt_ids + episode.response_ids == trace.ids
        assert episode.response_mask == trace.loss_mask[prompt:]
        assert trace.loss_mask[:prompt] == [0] * prompt
        assert episode.response_logprobs == pytest.approx(trace.logprobs[prompt:], abs=1e-5)
        assert episode.reward_score == ref.reward.value
        assert episode.reward_extra_info == {
            **reward_components(ref),
            "agentwheel/truncated": 0.0,
        }


def test_the_tiny_model_comparison_is_not_vacuous(reference, looped):
    """Its episodes differ in reward components, and each generated ids and got a user turn."""
    _, results = looped
    states = {episode.reward_extra_info["agentwheel/state_matches"] for _, episode in results}
    assert states == {0.0, 1.0}
    assert all(e.response_mask[0] == 1 and e.response_mask[-1] == 0 for _, e in results)


def distinct_openings(tasks: list[Task]) -> list[Task]:
    """The sample tasks share requests; a replayed reply is looked up by its prompt."""
    return [
        t.model_copy(
            update={"user": t.user.model_copy(update={"request": f"{t.user.request} ({t.id})"})}
        )
        for t in tasks
    ]


@pytest.mark.parametrize("backend", ["sqlite", "mock"])
def test_oracle_episodes_through_the_loop_equal_the_runner_and_pass(tokenizer, backend):
    """Multi-turn: tool and user ids (mask 0) between generations, and rewards of 1."""
    tasks = distinct_openings(TASKS)
    config = replace(runner_config(), backend=backend)
    reference, oracle = oracle_trajectories(tokenizer, tasks, config)
    assert {r.backend for r in reference} == {backend}
    renderer = ChatTemplateRenderer(tokenizer)
    server = ReplayServer(oracle.replies)
    results = gather(*(loop_episode(server, renderer, task, config) for task in tasks))
    for ref, (trajectory, episode) in zip(reference, results, strict=True):
        assert ref.tokens is not None and trajectory.error is None
        prompt = len(episode.prompt_ids)
        assert episode.prompt_ids + episode.response_ids == ref.tokens.ids
        assert episode.response_mask == ref.tokens.loss_mask[prompt:]
        assert episode.reward_score == ref.reward.value
    assert [e.reward_score for _, e in results] == [1.0] * len(tasks)
    masks = [e.response_mask for _, e in results]
    assert all(1 in m[m.index(0) :] for m in masks), "a generation after an env turn"
    assert max(e.reward_extra_info["agentwheel/tool_calls"] for _, e in results) >= 2


def test_mask_is_one_exactly_on_the_ids_the_server_generated(looped):
    server, results = looped
    generated = [
        [i for i, m in zip(e.response_ids, e.response_mask, strict=True) if m == 1]
        for _, e in results
    ]
    served = sorted(server.served)
    # Each episode's generated ids are some of the served generations, concatenated.
    assert sum(len(g) for g in generated) == sum(len(s) for s in served)
    assert sorted(chain.from_iterable(generated)) == sorted(chain.from_iterable(served))


def test_every_generation_asks_for_the_turn_budget_with_verl_sampling(looped):
    server, _ = looped
    assert server.requests, "the server was never called"
    for request in server.requests:
        assert request["max_tokens"] == MAX_NEW_TOKENS
        assert request["temperature"] == VERL_SAMPLING["temperature"]
        assert request["logprobs"] is True
    # One request id per episode (a routing server keeps an episode on one replica).
    assert len({r["request_id"] for r in server.requests}) == len(TASKS)


class FailingServer:
    async def generate(self, request_id, *, prompt_ids, sampling_params):
        raise ConnectionError("replica went away")


def test_a_server_failure_ends_the_episode_as_a_model_error_with_reward_zero(tokenizer):
    renderer = ChatTemplateRenderer(tokenizer)
    [(trajectory, episode)] = gather(loop_episode(FailingServer(), renderer, TASKS[0]))
    assert trajectory.termination == "model_error"
    assert "replica went away" in (trajectory.error or "")
    assert episode.reward_score == 0.0 and episode.response_ids == []


def test_a_long_episode_is_cut_to_the_response_length_and_flagged(reference):
    ref = reference[0]
    assert ref.tokens is not None
    prompt = ref.tokens.loss_mask.index(1)
    episode = verl_episode(ref, PROMPT_LENGTH, response_length=5, with_logprobs=False)
    assert episode.response_ids == ref.tokens.ids[prompt : prompt + 5]
    assert episode.truncated and episode.reward_extra_info["agentwheel/truncated"] == 1.0
    assert episode.response_logprobs is None


def test_a_prompt_longer_than_verl_allows_is_refused(reference):
    with pytest.raises(ValueError, match="prompt_length"):
        verl_episode(
            reference[0], prompt_length=10, response_length=RESPONSE_LENGTH, with_logprobs=False
        )


def test_the_score_is_the_training_reward_with_its_wrong_stance_penalty(reference):
    happy = next(t for t in reference if t.branch_kind == "happy")
    reward = happy.reward.model_copy(update={"passed": False, "stance": "declined"})
    declined = happy.model_copy(update={"reward": reward})
    scores = [
        verl_episode(declined, PROMPT_LENGTH, RESPONSE_LENGTH, False, penalty).reward_score
        for penalty in (0.0, 0.5)
    ]
    assert scores == [0.0, -0.5]
    went_ahead = happy.model_copy(
        update={"reward": reward.model_copy(update={"stance": "went_ahead"})}
    )
    assert verl_episode(went_ahead, PROMPT_LENGTH, RESPONSE_LENGTH, False, 0.5).reward_score == 0.0
