"""Reasoning RL rollouts: `group_size` single-turn answers per problem, scored by the
verified reasoning reward (correctness plus a small format term).

Each answer becomes a `Trajectory` (user question as context, the answer as the only
agent-generated span), so the GRPO trainer, the trace writer and the round report treat
reasoning and agentic rollouts alike. The scalar reward of every trajectory travels next
to it in `ReasoningBatch.rewards`, because a trajectory's own reward field is the binary
pass/fail of an environment. Dynamic sampling is the same as for agentic groups: a group
whose rewards are all equal is dropped and a new problem is drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agentwheel.core.messages import ChatRequest, Completion, Message, SamplingParams
from agentwheel.envs.trajectory import EpisodeCounts, RewardBreakdown, TokenTrace, Trajectory
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.reward import ReasoningReward
from agentwheel.llm.types import ChatModel, Renderer
from agentwheel.train.rollout import RolloutBatch, TaskStream


@dataclass
class ReasoningBatch(RolloutBatch):
    """A rollout batch whose rewards are graded: `rewards` parallel to `groups`,
    `all_rewards` parallel to `trajectories`."""

    rewards: list[list[float]] = field(default_factory=list)
    all_rewards: list[float] = field(default_factory=list)

    def metrics(self) -> dict[str, float | int | bool]:
        correct = [t.reward.value for t in self.trajectories]
        n = max(len(self.trajectories), 1)
        return {
            **super().metrics(),
            "rollout_reward_mean": sum(self.all_rewards) / n,
            "rollout_correct_mean": sum(correct) / n,
        }

    def graded_rewards(self) -> list[list[float]]:
        return self.rewards


def token_renderer(model: ChatModel) -> Renderer:
    if model.renderer is None:
        raise TypeError(f"{model.name} is not a token back-end (hf, vllm): RL needs one")
    return model.renderer


def answer_trajectory(
    problem: Problem,
    trial: int,
    prompt: Message,
    prompt_ids: Sequence[int],
    completion: Completion,
    model: ChatModel,
    reward: ReasoningReward,
) -> tuple[Trajectory, float]:
    """One answer as a trajectory (loss mask 1 exactly on the answer's tokens) and its reward."""
    tokens = TokenTrace()
    tokens.add_context(prompt_ids)
    generated = completion.completion_ids or []
    tokens.add_generated(generated, completion.logprobs)
    tokens.add_context(token_renderer(model).close_turn_ids(generated, completion.finish_reason))
    parts = reward.breakdown(problem, completion.text)
    trajectory = Trajectory(
        task_id=problem.id,
        trial=trial,
        domain="reasoning",
        branch_kind=problem.lineage.operator,
        policy=model.name,
        backend="reasoning",
        messages=[prompt, Message(role="assistant", content=completion.text)],
        tokens=tokens,
        reward=RewardBreakdown(
            passed=parts.correct,
            state_matches=parts.correct,
            hack_action_ran=False,
            final_state=parts.extracted or "",
            expected_state=problem.answer,
        ),
        termination="model_error" if completion.failed else "user_ended",
        error=completion.error,
        counts=EpisodeCounts(agent_turns=1, generated_tokens=len(generated)),
    )
    return trajectory, parts.total


def answer_groups(
    model: ChatModel,
    problems: Sequence[Problem],
    group_size: int,
    params: SamplingParams,
    reward: ReasoningReward,
) -> list[list[tuple[Trajectory, float]]]:
    """`group_size` sampled answers to each problem, in one batched chat call."""
    prompts = [
        Message(role="user", content=reward.answer_format.prompt(p.question)) for p in problems
    ]
    renderer = token_renderer(model)
    prompt_ids = [renderer.initial_ids([m], []) for m in prompts]
    requests = [
        ChatRequest(messages=[m], prompt_ids=ids)
        for m, ids in zip(prompts, prompt_ids, strict=True)
        for _ in range(group_size)
    ]
    completions = model.chat(requests, params)
    return [
        [
            answer_trajectory(
                problem,
                trial,
                prompts[i],
                prompt_ids[i],
                completions[i * group_size + trial],
                model,
                reward,
            )
            for trial in range(group_size)
        ]
        for i, problem in enumerate(problems)
    ]


def collect_reasoning_groups(
    model: ChatModel,
    params_for_attempt: Callable[[int], SamplingParams],
    stream: TaskStream[Problem],
    batch_groups: int,
    group_size: int,
    reward: ReasoningReward,
    *,
    dynamic_sampling: bool = True,
    max_attempts: int = 4,
) -> ReasoningBatch:
    """Sample groups until `batch_groups` informative ones are in hand or attempts run out;
    sampling round `a` uses `params_for_attempt(a)` (its seed fixes the draw)."""
    if batch_groups < 1 or group_size < 1 or max_attempts < 1:
        raise ValueError("batch_groups, group_size and max_attempts must be >= 1")
    batch = ReasoningBatch(groups=[])
    while len(batch.groups) < batch_groups and batch.attempts < max_attempts:
        problems = stream.take(batch_groups - len(batch.groups))
        groups = answer_groups(
            model, problems, group_size, params_for_attempt(batch.attempts), reward
        )
        batch.attempts += 1
        batch.tasks_drawn += len(problems)
        for group in groups:
            trajectories = [t for t, _ in group]
            rewards = [r for _, r in group]
            batch.trajectories += trajectories
            batch.all_rewards += rewards
            if dynamic_sampling and len(set(rewards)) == 1:
                batch.groups_dropped += 1
            elif len(batch.groups) < batch_groups:
                batch.groups.append(trajectories)
                batch.rewards.append(rewards)
        if not dynamic_sampling:
            break
    batch.exhausted = len(batch.groups) < batch_groups
    return batch
