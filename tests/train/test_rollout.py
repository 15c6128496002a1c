"""GRPO rollouts: groups per task, dynamic sampling drops zero-variance groups and refills."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agentwheel.core.dataset import load_tasks
from agentwheel.core.messages import Completion
from agentwheel.core.run_layout import TASKS_FILE
from agentwheel.envs.agent import EpisodeView
from agentwheel.envs.scripted import OraclePolicy, RefusePolicy
from agentwheel.flywheels.agentic.synth import synth_agentic
from agentwheel.train.rollout import StratifiedTaskStream, TaskStream, collect_groups, rollout_seed


class SplitPolicy:
    """Oracle on tasks in `always_pass`; elsewhere oracle on even trials, refusal on odd
    ones: groups of `always_pass` tasks are uniform, the others informative (unless the
    refusal is itself the right answer, which makes them uniform too)."""

    name = "split"

    def __init__(self, always_pass: set[str]):
        self.always_pass = always_pass
        self.oracle, self.refuse = OraclePolicy(), RefusePolicy()

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        out = []
        for view in views:
            good = view.task.id in self.always_pass or view.trial % 2 == 0
            out.append((self.oracle if good else self.refuse).act([view])[0])
        return out


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    synth_agentic(out, ["agentwheel/data/workflows/retail_order_cancel.yaml"], tasks_per_workflow=8)
    # Keep tasks where refusing fails, so a mixed group really has mixed rewards.
    return [
        t
        for t in load_tasks(out / TASKS_FILE).tasks
        if "refusal" not in t.evaluation.required_signals
    ]


def test_dynamic_sampling_drops_uniform_groups_and_refills(tasks):
    assert len(tasks) >= 4
    # The first two tasks the stream draws always pass: the first round is all dropped.
    uniform = {t.id for t in TaskStream(tasks, seed=3).take(2)}
    stream = TaskStream(tasks, seed=3)
    batch = collect_groups(
        lambda attempt: SplitPolicy(uniform), stream, batch_groups=2, group_size=2, max_attempts=10
    )
    assert len(batch.groups) == 2 and not batch.exhausted
    for group in batch.groups:
        assert len(group) == 2 and len({t.reward.value for t in group}) == 2
        assert group[0].task_id not in uniform and group[0].task_id == group[1].task_id
    # Every dropped group was all-pass; every draw is accounted for.
    assert batch.tasks_drawn == stream.drawn == len(batch.groups) + batch.groups_dropped
    assert batch.attempts == 2 and batch.groups_dropped == 2
    assert len(batch.trajectories) == 2 * batch.tasks_drawn == 8
    metrics = batch.metrics()
    assert metrics["rollout_groups_dropped"] == batch.groups_dropped


def test_refill_stops_at_max_attempts_and_counts_them(tasks):
    everything = {t.id for t in tasks}
    batch = collect_groups(
        lambda attempt: SplitPolicy(everything), TaskStream(tasks, 0), 2, 2, max_attempts=3
    )
    assert batch.groups == [] and batch.exhausted
    assert batch.attempts == 3 and batch.groups_dropped == batch.tasks_drawn == 6


def test_without_dynamic_sampling_every_group_is_kept(tasks):
    batch = collect_groups(
        lambda attempt: SplitPolicy({t.id for t in tasks}),
        TaskStream(tasks, 0),
        3,
        2,
        dynamic_sampling=False,
    )
    assert len(batch.groups) == 3 and batch.attempts == 1 and batch.groups_dropped == 0


def test_task_stream_and_seeds_are_deterministic(tasks):
    a, b = TaskStream(tasks, 5), TaskStream(tasks, 5)
    assert [t.id for t in a.take(len(tasks) + 3)] == [t.id for t in b.take(len(tasks) + 3)]
    first_pass = [t.id for t in TaskStream(tasks, 5).take(len(tasks))]
    assert sorted(first_pass) == sorted(t.id for t in tasks)  # a pass is a permutation
    assert rollout_seed(0, 1, 2) == rollout_seed(0, 1, 2) != rollout_seed(0, 1, 3)


def test_a_stratified_stream_draws_every_stratum_once_per_cycle_and_resumes_exactly():
    items = [
        f"{kind}-{i}" for kind, n in (("happy", 5), ("refuse", 1), ("clarify", 2)) for i in range(n)
    ]
    stream = StratifiedTaskStream(items, seed=4, stratum=lambda item: item.split("-")[0])
    drawn = stream.take(12)
    for cycle in range(4):
        kinds = sorted(item.split("-")[0] for item in drawn[3 * cycle : 3 * cycle + 3])
        assert kinds == ["clarify", "happy", "refuse"]
    # Within a stratum, a pass over its items before any repeats: 4 distinct of 5 happy.
    assert len({item for item in drawn if item.startswith("happy")}) == 4
    assert drawn.count("refuse-0") == 4
    resumed = StratifiedTaskStream(items, seed=4, stratum=lambda item: item.split("-")[0])
    resumed.drawn = 5
    assert resumed.take(7) == drawn[5:]
