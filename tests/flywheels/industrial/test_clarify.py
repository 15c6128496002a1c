"""Ambiguous industrial questions: the agent must ask the user what they meant (which team,
which year) before it answers; the simulated user answers the question; answering
without asking fails even when the answer is right."""

from __future__ import annotations

import pytest

from agentwheel.core.dataset import load_tasks
from agentwheel.core.task import facts_to_ask_for
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import OraclePolicy, call_completion, say
from agentwheel.envs.tables import load_tables
from agentwheel.envs.user import ScriptedUser
from agentwheel.flywheels.industrial.analysis_tasks import (
    Draft,
    ambiguous_period,
    draft_analysis_tasks,
)
from agentwheel.flywheels.industrial.gate import gate_industrial
from tests.flywheels.industrial.scripted_runs import pass_rate


def _ambiguous(fixtures: str):
    tasks = [t for t in load_tasks(fixtures).tasks if t.lineage.branch.startswith("clarify_")]
    assert len(tasks) == 4
    return tasks


@pytest.mark.parametrize("fixtures", ["search-fixtures", "analysis-fixtures"])
def test_ambiguous_fixtures_pass_only_when_the_agent_asks_first(fixtures):
    tasks = _ambiguous(fixtures)
    assert pass_rate("oracle", tasks) == 1.0
    for shortcut in ("blind", "distractor", "guess"):
        assert pass_rate(shortcut, tasks) == 0.0, shortcut


@pytest.mark.parametrize(
    ("fixtures", "said"),
    [("search-fixtures", "My team is"), ("analysis-fixtures", "My reporting year is")],
)
def test_the_simulated_user_answers_the_clarifying_question(fixtures, said):
    task = _ambiguous(fixtures)[0]
    [result] = EpisodeRunner(OraclePolicy(), ScriptedUser()).run([EpisodeSpec(task)])
    users = [m.content for m in result.messages if m.role == "user"]
    fact = next(iter(task.user.known_facts.values()))
    assert any(said in u and fact in u for u in users)
    assert fact not in task.user.request
    assert result.reward.signals_present == {"clarification": True}


class _AnswersThenAsks(OraclePolicy):
    """The careful calls, the answer, and only then the question."""

    name = "answers-then-asks"

    def _act_one(self, view):
        made = sum(len(m.tool_calls) for m in view.messages if m.role == "assistant")
        if made == len(view.task.normal_path) and not view.scratch.get("asked"):
            view.scratch["asked"] = True
            return super()._act_one(view)
        steps = view.task.normal_path
        return call_completion(steps[made], made) if made < len(steps) else say("Done.")


def test_the_question_must_come_before_the_answer():
    task = _ambiguous("search-fixtures")[0]
    [late] = EpisodeRunner(_AnswersThenAsks(), ScriptedUser()).run([EpisodeSpec(task)])
    assert late.reward.answer.correct and not late.reward.answer.evidence_missing
    assert late.reward.signals_present == {"clarification": False} and not late.passed


def test_ambiguous_periods_leave_the_year_to_the_user():
    tables = load_tables("shop")
    drafts = draft_analysis_tasks(tables, "shop", 12, seed=2, templates=("clarify_period",))
    report = gate_industrial(drafts)
    # Rejected: where the year assumed gives the same answer (the trap would not bite).
    assert len(report.kept) >= 10
    assert {r.reason for r in report.rejected} <= {"hack_path_harmless"}
    for task in report.kept:
        year = task.user.known_facts["reporting_year"]
        assert year not in task.user.request and year in task.analysis.gold_sql
        wrong = task.hack_path[0].arguments["query"]
        assert year not in wrong  # the trap: another year assumed
    undated = Draft(
        "top_city",
        "Which city has the most customers?",
        "SELECT 1",
        "SELECT 2",
        "text",
        "customers",
    )
    assert ambiguous_period(undated) is None


class _AsksTwice(OraclePolicy):
    """The oracle, with its clarifying question asked again once the user has answered."""

    name = "asks-twice"

    def _act_one(self, view):
        if view.scratch.get("asked") and not view.scratch.get("again"):
            view.scratch["again"] = True
            names = " and ".join(f.replace("_", " ") for f in facts_to_ask_for(view.task))
            return say(f"Sorry, what was your {names} again?")
        return super()._act_one(view)


@pytest.mark.parametrize("fixtures", ["search-fixtures", "analysis-fixtures"])
def test_asking_again_for_what_the_user_answered_fails(fixtures):
    task = _ambiguous(fixtures)[0]
    [result] = EpisodeRunner(_AsksTwice(), ScriptedUser()).run([EpisodeSpec(task)])
    assert result.reward.answer.correct and result.reward.signals_present["clarification"]
    assert result.reward.facts_asked_again == facts_to_ask_for(task) and not result.passed
