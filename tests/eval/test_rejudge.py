import json

import pytest

from agentwheel.core.dataset import load_tasks, write_tasks
from agentwheel.core.task import facts_given
from agentwheel.envs.attacks import ATTACK_POLICIES, ReAskPolicy
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import SCRIPTED_POLICIES
from agentwheel.envs.user import ScriptedUser
from agentwheel.eval.evaluate import SUMMARY, TRACES, read_traces, run_eval
from agentwheel.eval.rejudge import RejudgeError, rejudge, rejudge_eval
from agentwheel.settings.runner import RunnerConfig
from tests.envs.sample_tasks import ALL_KINDS, make_task

TASKS = [make_task(k) for k in ALL_KINDS]


@pytest.mark.parametrize("backend", ["sqlite", "mock"])
def test_judging_a_saved_episode_again_gives_the_verdict_it_was_given(backend):
    tasks = load_tasks("fixtures").tasks
    by_id = {t.id: t for t in tasks}
    verdicts = 0
    for make in [*SCRIPTED_POLICIES.values(), *ATTACK_POLICIES.values()]:
        runner = EpisodeRunner(make(), ScriptedUser(), RunnerConfig(backend=backend))
        for episode in runner.run(EpisodeSpec(task=t) for t in tasks):
            assert rejudge(episode, by_id[episode.task_id]).reward == episode.reward
            verdicts += episode.passed
    assert verdicts > len(tasks)  # the policies pass some tasks and fail others


def _as_an_older_reward_wrote_it(eval_dir):
    """Traces as the reward before the asked-again rule wrote them: the repeated question
    did not count."""
    lines = []
    for trajectory in read_traces(eval_dir / TRACES).done:
        reward = trajectory.reward
        if reward.facts_asked_again:
            reward = reward.model_copy(update={"passed": True, "facts_asked_again": []})
        lines.append(trajectory.model_copy(update={"reward": reward}).model_dump_json())
    (eval_dir / TRACES).write_text("\n".join(lines) + "\n")


def test_an_eval_judged_again_counts_the_new_rule_in_traces_and_summary(tmp_path):
    run_eval(TASKS, ReAskPolicy(), ScriptedUser(), 1, tmp_path, RunnerConfig(), meta={"x": 1})
    after = json.loads((tmp_path / SUMMARY).read_text())
    _as_an_older_reward_wrote_it(tmp_path)
    with (tmp_path / TRACES).open("a") as traces:
        traces.write('{"torn": \n')
    by_id = {t.id: t for t in TASKS}

    rejudged = rejudge_eval(tmp_path, by_id)

    asked_again = {t.branch_kind for t in TASKS if facts_given(t)}
    assert asked_again == {"happy", "refuse", "transfer", "adversarial"}
    assert (rejudged.episodes, rejudged.passed_before) == (5, 5)
    assert (rejudged.passed_after, rejudged.changed) == (5 - len(asked_again), len(asked_again))
    episodes = read_traces(tmp_path / TRACES)
    assert {t.branch_kind for t in episodes.done if not t.passed} == asked_again
    assert episodes.corrupt_lines == 1  # the torn line is kept, not dropped
    summary = json.loads((tmp_path / SUMMARY).read_text())
    assert summary["pass_hat_k"] == after["pass_hat_k"] == {"1": 0.2}
    assert summary["failure_reasons"] == after["failure_reasons"] == {"asked_again": 4}
    assert summary["x"] == 1 and summary["by_branch_kind"]["happy"]["pass_hat_k"]["1"] == 0.0


def test_episodes_of_unknown_tasks_change_nothing(tmp_path):
    run_eval(TASKS, ReAskPolicy(), ScriptedUser(), 1, tmp_path, RunnerConfig())
    before = (tmp_path / TRACES).read_bytes()
    with pytest.raises(RejudgeError, match="not in the task set given"):
        rejudge_eval(tmp_path, {t.id: t for t in TASKS[:2]})
    assert (tmp_path / TRACES).read_bytes() == before
    with pytest.raises(RejudgeError, match=r"has no traces\.jsonl"):
        rejudge_eval(tmp_path / "nothing", {})


def test_the_cli_judges_an_eval_again_and_says_what_changed(tmp_path):
    from typer.testing import CliRunner

    from agentwheel.cli import app

    tasks = tmp_path / "tasks.jsonl"
    write_tasks(TASKS, tasks)
    out = tmp_path / "eval"
    run_eval(TASKS, ReAskPolicy(), ScriptedUser(), 1, out, RunnerConfig())
    _as_an_older_reward_wrote_it(out)
    result = CliRunner().invoke(app, ["rejudge", str(out), "--tasks", str(tasks)])
    assert result.exit_code == 0, result.output
    assert "5 passed before, 1 now (4 verdicts changed)" in result.output
    missing = CliRunner().invoke(app, ["rejudge", str(tmp_path), "--tasks", str(tasks)])
    assert missing.exit_code != 0 and "has no traces.jsonl" in missing.output


def test_a_study_counts_the_greedy_episodes_that_asked_again(tmp_path):
    from agentwheel.study.results import asked_again_share, greedy_episodes, greedy_scores

    run_eval(TASKS, ReAskPolicy(), ScriptedUser(), 1, tmp_path, RunnerConfig())
    given = [t for t in TASKS if facts_given(t)]
    episodes = greedy_episodes(tmp_path, TASKS)
    assert asked_again_share(episodes) == len(given) / len(TASKS) == 0.8
    assert sum(greedy_scores(episodes).values()) == len(TASKS) - len(given)
