"""`grpo.wrong_stance_penalty`: a failed episode whose stance its branch kind rules out
earns less than one that only failed in the carrying-out, so groups that all fail still
teach which tasks to decline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from agentwheel.core.dataset import load_tasks
from agentwheel.core.messages import Completion
from agentwheel.envs.agent import EpisodeView
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import SCRIPTED_POLICIES, BlindPolicy, RefusePolicy
from agentwheel.envs.user import ScriptedUser
from agentwheel.settings.config_file import apply_overrides
from agentwheel.settings.runner import RunnerConfig
from agentwheel.settings.schedule import load_config
from agentwheel.settings.trainer import GRPOConfig
from agentwheel.train.grpo import group_advantages, training_reward, trajectory_reward
from agentwheel.train.rollout import TaskStream, branch_kind_mix, collect_groups
from agentwheel.train.schedule import ScheduleRun
from tests.train.conftest import require_bundled_gguf

TINY = Path(__file__).parents[2] / "agentwheel" / "configs" / "tiny.yaml"
PENALTY = 0.5
DONE_KINDS = ("happy", "clarify", "transfer")  # tasks to be done (or handed off), not declined


@pytest.fixture(scope="module")
def fixtures():
    return load_tasks("fixtures").tasks


def _rewards(policy: str, tasks) -> dict[str, set[float]]:
    reward = training_reward(GRPOConfig(wrong_stance_penalty=PENALTY))
    out: dict[str, set[float]] = {}
    runner = EpisodeRunner(SCRIPTED_POLICIES[policy](), ScriptedUser(), RunnerConfig())
    for episode in runner.run(EpisodeSpec(task=t) for t in tasks):
        out.setdefault(episode.branch_kind, set()).add(reward(episode))
    return out


def test_the_oracle_earns_one_on_every_kind(fixtures):
    assert _rewards("oracle", fixtures) == {
        k: {1.0} for k in (*DONE_KINDS, "refuse", "adversarial")
    }


def test_declining_a_task_to_be_done_costs_the_penalty_declining_blind_a_refusal_does_not(fixtures):
    rewards = _rewards("refuse", fixtures)
    assert all(rewards[k] == {-PENALTY} for k in DONE_KINDS)
    # the right stance without the evidence: failed, not wrong
    assert rewards["refuse"] == rewards["adversarial"] == {0.0}


def test_going_ahead_fails_plainly_on_a_happy_task_and_costs_the_penalty_on_a_refusal(fixtures):
    rewards = _rewards("blind", fixtures)
    assert rewards["happy"] == {0.0}
    assert rewards["refuse"] == rewards["adversarial"] == rewards["clarify"] == {-PENALTY}


def test_no_penalty_is_the_environments_verdict():
    assert training_reward(GRPOConfig()) is trajectory_reward


def test_a_negative_penalty_is_refused():
    with pytest.raises(ValueError, match="wrong_stance_penalty"):
        GRPOConfig(wrong_stance_penalty=-0.1)


class DeclineOrGoAhead:
    """Declines blind on even trials, goes ahead without the lookups on odd ones: on a
    happy task both fail."""

    name = "decline-or-go-ahead"

    def __init__(self) -> None:
        self.decline, self.go_ahead = RefusePolicy(), BlindPolicy()

    def act(self, views: Sequence[EpisodeView]) -> list[Completion]:
        return [(self.go_ahead if v.trial % 2 else self.decline).act([v])[0] for v in views]


def test_a_group_that_all_fails_teaches_going_ahead_over_declining(fixtures):
    happy = [t for t in fixtures if t.branch_kind == "happy"][:2]

    def collect(penalty: float):
        return collect_groups(
            lambda attempt: DeclineOrGoAhead(),
            TaskStream(happy, seed=0),
            batch_groups=2,
            group_size=2,
            max_attempts=1,
            reward_fn=training_reward(GRPOConfig(wrong_stance_penalty=penalty)),
        )

    plain = collect(0.0)
    assert plain.groups == [] and plain.groups_dropped == 2  # all fail: no signal
    shaped = collect(PENALTY)
    assert len(shaped.groups) == 2 and not any(t.passed for g in shaped.groups for t in g)
    reward = training_reward(GRPOConfig(wrong_stance_penalty=PENALTY))
    for group in shaped.groups:
        advantages = group_advantages([[reward(t) for t in group]])[0]
        by_stance = {t.reward.stance: a for t, a in zip(group, advantages, strict=True)}
        assert by_stance["went_ahead"] > 0 > by_stance["declined"]
    mix = branch_kind_mix(shaped)
    assert mix["rollout_wrong_stance_happy"] == 0.5 and mix["rollout_reward_happy"] == 0.0


def test_a_schedules_trainer_learns_from_the_configured_reward(fixtures, tmp_path):
    require_bundled_gguf()
    raw = load_config(TINY).model_dump(mode="json")
    config = load_config(TINY).model_validate(
        apply_overrides(raw, [f"grpo.wrong_stance_penalty={PENALTY}"])
    )
    trainer = ScheduleRun(config, tmp_path / "run", log=lambda _: None).grpo_trainer()
    happy = [t for t in fixtures if t.branch_kind == "happy"][:1]
    declined = EpisodeRunner(RefusePolicy(), ScriptedUser(), RunnerConfig()).run(
        [EpisodeSpec(task=happy[0])]
    )
    assert trainer.reward_fn(declined[0]) == -PENALTY
