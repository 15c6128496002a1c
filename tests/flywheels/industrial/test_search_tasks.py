from collections import Counter

import pytest

from agentwheel.envs.knowledge_base import generate_knowledge_base
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import SCRIPTED_POLICIES
from agentwheel.envs.user import ScriptedUser
from agentwheel.flywheels.industrial.gate import gate_industrial
from agentwheel.flywheels.industrial.search_tasks import TEMPLATES, draft_search_tasks
from agentwheel.settings.runner import RunnerConfig

SPEC = "kb?seed=0&docs=1000"


@pytest.fixture(scope="module")
def kept():
    kb = generate_knowledge_base(seed=0, docs=1000)
    report = gate_industrial(draft_search_tasks(kb, SPEC, 15, seed=1))
    assert len(report.kept) >= 12
    return report.kept


def _pass_rate(policy: str, tasks, backend: str = "auto") -> float:
    runner = EpisodeRunner(
        SCRIPTED_POLICIES[policy](), ScriptedUser(), RunnerConfig(backend=backend)
    )  # type: ignore[arg-type]
    results = runner.run([EpisodeSpec(t) for t in tasks])
    return sum(r.passed for r in results) / len(results)


def test_every_template_survives_the_gate(kept):
    assert set(Counter(t.lineage.branch for t in kept)) == set(TEMPLATES)


@pytest.mark.parametrize("backend", ["auto", "mock"])
def test_oracle_passes_and_both_shortcuts_fail(kept, backend):
    assert _pass_rate("oracle", kept, backend) == 1.0
    assert _pass_rate("blind", kept, backend) == 0.0
    assert _pass_rate("distractor", kept, backend) == 0.0


def test_a_right_answer_without_the_evidence_fails(kept):
    task = next(t for t in kept if t.lineage.branch == "lead_office")
    trimmed = task.model_copy(deep=True)
    # Open the lead's page but skip the project page: the answer is right, evidence is not.
    trimmed.normal_path = [
        s
        for s in trimmed.normal_path
        if s.arguments.get("doc_id") != task.evaluation.answer.evidence_docs[0]
    ]
    [result] = EpisodeRunner(SCRIPTED_POLICIES["oracle"](), ScriptedUser()).run(
        [EpisodeSpec(trimmed)]
    )
    assert result.reward.answer.correct and not result.passed
    assert result.reward.answer.evidence_missing == [task.evaluation.answer.evidence_docs[0]]
