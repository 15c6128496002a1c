from collections import Counter

import pytest

from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import SCRIPTED_POLICIES
from agentwheel.envs.tables import load_tables
from agentwheel.envs.user import ScriptedUser
from agentwheel.flywheels.industrial.analysis_tasks import TEMPLATES, draft_analysis_tasks
from agentwheel.flywheels.industrial.gate import gate_industrial
from agentwheel.settings.runner import RunnerConfig


@pytest.fixture(scope="module")
def kept():
    tasks = draft_analysis_tasks(load_tables("shop"), "shop", 18, seed=5)
    report = gate_industrial(tasks)
    assert len(report.kept) >= 14
    return report.kept


def _pass_rate(policy: str, tasks, backend: str = "auto") -> float:
    runner = EpisodeRunner(
        SCRIPTED_POLICIES[policy](), ScriptedUser(), RunnerConfig(backend=backend)
    )  # type: ignore[arg-type]
    results = runner.run([EpisodeSpec(t) for t in tasks])
    return sum(r.passed for r in results) / len(results)


def test_most_templates_survive_the_gate(kept):
    assert len(Counter(t.lineage.branch for t in kept)) >= len(TEMPLATES) - 1


def test_the_gold_value_is_what_the_gold_query_returns(kept):
    task = next(t for t in kept if t.lineage.branch == "missing_segment")
    cursor = load_tables("shop").connection.cursor()
    assert cursor.execute(task.analysis.gold_sql).fetchone()[0] == task.evaluation.answer.value


@pytest.mark.parametrize("backend", ["auto", "mock"])
def test_oracle_passes_and_both_shortcuts_fail(kept, backend):
    assert _pass_rate("oracle", kept, backend) == 1.0
    assert _pass_rate("blind", kept, backend) == 0.0
    assert _pass_rate("distractor", kept, backend) == 0.0


def test_a_right_answer_without_the_query_fails(kept):
    task = next(t for t in kept if t.evaluation.answer.kind == "number").model_copy(deep=True)
    task.normal_path = [s for s in task.normal_path if s.tool != "run_sql"]
    [result] = EpisodeRunner(SCRIPTED_POLICIES["oracle"](), ScriptedUser()).run([EpisodeSpec(task)])
    assert result.reward.answer.correct and not result.passed
