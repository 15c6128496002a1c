"""GRPO rollouts: groups of episodes per task, with DAPO's dynamic-sampling refill.

`collect_groups` draws tasks from a seeded `TaskStream`, runs `group_size` episodes of each
through the episode runner and, under dynamic sampling, drops groups whose rewards are all
equal (no learning signal) and draws more tasks until the batch holds `batch_groups`
informative groups or `max_attempts` sampling rounds have been spent. Every draw is a
pure function of (seed, round, step, attempt), so a resumed run rolls out exactly what
the uninterrupted run would have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from agentwheel.core.messages import Completion, SamplingParams
from agentwheel.core.stats import mean
from agentwheel.core.task import BRANCH_KINDS, Task
from agentwheel.envs.agent import EpisodeView, ModelPolicy, Policy
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.stance import took_wrong_stance
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.user import ScriptedUser, UserSimulator
from agentwheel.llm.types import ChatModel
from agentwheel.settings.runner import RunnerConfig
from agentwheel.train.grpo import RewardFn, trajectory_reward


class TurnSeededPolicy(ModelPolicy):
    """A model policy whose every `act` call samples with its own seed: base, base+1, ...

    `HFChatModel.chat` seeds the whole call with `params.seed`; without bumping it, every
    turn of an episode would replay the same random stream.
    """

    def __init__(self, model: ChatModel, params: SamplingParams, name: str | None = None):
        super().__init__(model, params, name)
        self._base = params.seed or 0
        self._calls = 0

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        self.params = self.params.model_copy(update={"seed": self._base + self._calls})
        self._calls += 1
        return super().act(views)


def rollout_seed(seed: int, *position: int) -> int:
    """A 31-bit seed fixed by the run seed and a position such as (round, step, attempt)."""
    return int(np.random.default_rng([seed, *position]).integers(0, 2**31 - 1))


T = TypeVar("T")


class TaskStream(Generic[T]):
    """Items (agentic tasks, reasoning problems) in a seeded order, reshuffled on every
    pass over the pool."""

    def __init__(self, tasks: Sequence[T], seed: int):
        if not tasks:
            raise ValueError("a task stream needs at least one task")
        self.tasks = list(tasks)
        self.seed = seed
        self.drawn = 0

    def take(self, n: int) -> list[T]:
        out = []
        for _ in range(n):
            epoch, index = divmod(self.drawn, len(self.tasks))
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.tasks))
            out.append(self.tasks[int(order[index])])
            self.drawn += 1
        return out


class StratifiedTaskStream(TaskStream[T]):
    """Items drawn one stratum at a time (e.g. one branch kind at a time): every run of
    as many draws as there are strata holds one item of each, strata in a seeded order per
    run; within a stratum, items in a seeded order reshuffled on every pass. Like
    `TaskStream`, the next draw is a function of (seed, drawn) alone."""

    def __init__(self, tasks: Sequence[T], seed: int, stratum: Callable[[T], str]):
        super().__init__(tasks, seed)
        by_stratum: dict[str, list[T]] = {}
        for task in self.tasks:
            by_stratum.setdefault(stratum(task), []).append(task)
        self.strata = [by_stratum[name] for name in sorted(by_stratum)]

    def take(self, n: int) -> list[T]:
        out = []
        for _ in range(n):
            cycle, slot = divmod(self.drawn, len(self.strata))
            which = int(
                np.random.default_rng([self.seed, 1, cycle]).permutation(len(self.strata))[slot]
            )
            items = self.strata[which]
            epoch, index = divmod(cycle, len(items))
            order = np.random.default_rng([self.seed, 2, which, epoch]).permutation(len(items))
            out.append(items[int(order[index])])
            self.drawn += 1
        return out


@dataclass
class RolloutBatch:
    """The groups to train on, and what it took to get them."""

    groups: list[list[Trajectory]]  # informative groups (all groups without dynamic sampling)
    trajectories: list[Trajectory] = field(default_factory=list)  # every episode rolled out
    attempts: int = 0  # sampling rounds run
    tasks_drawn: int = 0
    groups_dropped: int = 0  # all-pass or all-fail groups
    exhausted: bool = False  # max_attempts hit before the batch was full
    extra_metrics: dict[str, float | int] = field(default_factory=dict)  # a round kind's own

    def metrics(self) -> dict[str, float | int | bool]:
        rewards = [t.reward.value for t in self.trajectories]
        return {
            **self.extra_metrics,
            "rollout_attempts": self.attempts,
            "rollout_tasks_drawn": self.tasks_drawn,
            "rollout_groups_dropped": self.groups_dropped,
            "rollout_groups_informative": len(self.groups),
            "rollout_exhausted": self.exhausted,
            "rollout_reward_mean": mean(rewards),
            "rollout_episodes": len(self.trajectories),
            "rollout_tool_calls_mean": mean([t.counts.tool_calls for t in self.trajectories]),
        }

    def graded_rewards(self) -> list[list[float]] | None:
        """Rewards parallel to `groups` when they are not the trajectories' own pass/fail
        (None here: an agentic episode's reward is its environment's verdict)."""
        return None


def collect_groups(
    policy_for_attempt: Callable[[int], Policy],
    stream: TaskStream[Task],
    batch_groups: int,
    group_size: int,
    *,
    dynamic_sampling: bool = True,
    max_attempts: int = 4,
    user: UserSimulator | None = None,
    runner_config: RunnerConfig | None = None,
    reward_fn: RewardFn = trajectory_reward,
) -> RolloutBatch:
    """Roll out groups until `batch_groups` informative ones are in hand (or attempts run out).

    `policy_for_attempt(a)` gives the policy of sampling round `a` (a model policy seeded
    for that round). Without dynamic sampling one round is run and every group is kept.
    """
    if batch_groups < 1 or group_size < 1 or max_attempts < 1:
        raise ValueError("batch_groups, group_size and max_attempts must be >= 1")
    user = user or ScriptedUser()
    batch = RolloutBatch(groups=[])
    while len(batch.groups) < batch_groups and batch.attempts < max_attempts:
        tasks = stream.take(batch_groups - len(batch.groups))
        specs = [EpisodeSpec(task, trial) for task in tasks for trial in range(group_size)]
        runner = EpisodeRunner(policy_for_attempt(batch.attempts), user, runner_config)
        finished = runner.run(specs)
        batch.attempts += 1
        batch.tasks_drawn += len(tasks)
        batch.trajectories += finished
        ordered = _ordered(finished, specs)
        for g in range(len(tasks)):
            group = ordered[g * group_size : (g + 1) * group_size]
            rewards = {reward_fn(t) for t in group}
            if dynamic_sampling and len(rewards) == 1:
                batch.groups_dropped += 1
            elif len(batch.groups) < batch_groups:
                batch.groups.append(group)
        if not dynamic_sampling:
            break
    batch.exhausted = len(batch.groups) < batch_groups
    return batch


def _ordered(finished: Sequence[Trajectory], specs: Sequence[EpisodeSpec]) -> list[Trajectory]:
    """Trajectories in spec order (the runner returns them in finishing order)."""
    pending: dict[tuple[str, int], list[Trajectory]] = {}
    for t in finished:
        pending.setdefault((t.task_id, t.trial), []).append(t)
    return [pending[(s.task.id, s.trial)].pop(0) for s in specs]


def branch_kind_mix(batch: RolloutBatch) -> dict[str, float | int]:
    """Per branch kind: the groups trained on (`batch_groups_<kind>`), the mean reward of
    every rollout (`rollout_reward_<kind>`) and the share that took a stance the kind
    rules out (`rollout_wrong_stance_<kind>`): what a step learned from, kind by kind."""
    out: dict[str, float | int] = {}
    for kind in BRANCH_KINDS:
        out[f"batch_groups_{kind}"] = sum(1 for g in batch.groups if g and g[0].branch_kind == kind)
        episodes = [t for t in batch.trajectories if t.branch_kind == kind]
        if episodes:
            out[f"rollout_reward_{kind}"] = mean([t.reward.value for t in episodes])
            out[f"rollout_wrong_stance_{kind}"] = mean([took_wrong_stance(t) for t in episodes])
    return out
