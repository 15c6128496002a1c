import json

import pytest

from agentwheel.core.dataset import load_tasks
from agentwheel.core.messages import Message, ToolCall
from agentwheel.core.task import BRANCH_KINDS, RIGHT_STANCE
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import SCRIPTED_POLICIES
from agentwheel.envs.stance import observed_stance
from agentwheel.envs.transcript import tool_events
from agentwheel.envs.user import ScriptedUser
from agentwheel.eval.evaluate import SUMMARY, TRACES, read_traces, run_eval, summarize
from agentwheel.eval.rejudge import rejudge_eval
from agentwheel.eval.stances import (
    UNKNOWN,
    decline_rates,
    right_stance_counts,
    stance_lines,
    stance_matrix,
)
from agentwheel.settings.runner import RunnerConfig
from tests.envs.sample_tasks import make_task

TASK = make_task("clarify")  # the request leaves out the order id
REQUEST = Message(role="user", content=TASK.user.request)
QUESTION = Message(role="assistant", content="Could you tell me your order id?")
DECLINE = Message(role="assistant", content="I'm sorry, but I can't do that.")
LOOKUP = Message(
    role="assistant",
    tool_calls=[ToolCall(id="c1", name="get_order", arguments={"order_id": "O-1"})],
)
HAND_OFF = Message(
    role="assistant",
    tool_calls=[ToolCall(id="c2", name="transfer_to_human", arguments={"customer_id": "C-1"})],
)


def _result(call_id: str, content: dict) -> Message:
    return Message(role="tool", tool_call_id=call_id, content=json.dumps(content))


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([REQUEST, LOOKUP, _result("c1", {"status": "pending"})], "went_ahead"),
        ([REQUEST, QUESTION], "asked"),
        ([REQUEST, QUESTION, DECLINE], "declined"),
        ([REQUEST, DECLINE, HAND_OFF, _result("c2", {"ok": True})], "handed_off"),
        # a hand-off call that failed hands nothing off
        (
            [
                REQUEST,
                DECLINE,
                HAND_OFF,
                _result("c2", {"error": "not_found", "detail": "no record"}),
            ],
            "declined",
        ),
        # a question after the first action is not where the agent stood
        (
            [
                REQUEST,
                LOOKUP,
                _result("c1", {}),
                HAND_OFF,
                _result("c2", {"error": "x", "detail": "y"}),
                QUESTION,
            ],
            "went_ahead",
        ),
    ],
)
def test_the_strongest_thing_the_agent_did_names_its_stance(messages, expected):
    assert observed_stance(TASK, messages, tool_events(TASK, messages)) == expected


def _episodes(policy: str, backend: str = "sqlite"):
    tasks = load_tasks("fixtures").tasks
    runner = EpisodeRunner(
        SCRIPTED_POLICIES[policy](), ScriptedUser(), RunnerConfig(backend=backend)
    )
    return list(runner.run(EpisodeSpec(task=t) for t in tasks))


@pytest.mark.parametrize("backend", ["sqlite", "mock"])
def test_the_oracle_takes_every_kinds_right_stance_and_passes(backend):
    counts = right_stance_counts(stance_matrix(_episodes("oracle", backend)))
    assert list(counts) == list(BRANCH_KINDS)
    for kind, c in counts.items():
        assert c["right_stance"] == c["passed"] == c["episodes"] > 0, kind


@pytest.mark.parametrize("backend", ["sqlite", "mock"])
def test_declining_blind_is_a_decline_that_earns_nothing(backend):
    matrix = stance_matrix(_episodes("refuse", backend))
    for kind, row in matrix.items():
        assert row["declined"]["episodes"] == sum(c["episodes"] for c in row.values()), kind
        assert row["declined"]["passed"] == 0, kind  # the evidence rule
    counts = right_stance_counts(matrix)
    assert counts["refuse"]["right_stance"] == counts["refuse"]["episodes"] > 0
    assert counts["happy"]["right_stance"] == counts["transfer"]["right_stance"] == 0


def test_the_eval_summary_carries_the_matrix_and_its_lines_name_the_right_stance():
    episodes = _episodes("cautious")
    summary = summarize(episodes, k=1)
    assert summary["stances"] == stance_matrix(episodes)
    passed = sum(c["passed"] for row in summary["stances"].values() for c in row.values())
    assert passed == sum(t.passed for t in episodes) > 0
    lines = stance_lines(summary["stances"])
    assert lines[0].startswith(f"happy (right: {RIGHT_STANCE['happy']}): ")
    assert len(lines) == len(BRANCH_KINDS)


def test_traces_judged_before_the_stance_count_as_unknown_until_judged_again(tmp_path):
    tasks = load_tasks("fixtures").tasks
    run_eval(tasks, SCRIPTED_POLICIES["oracle"](), ScriptedUser(), 1, tmp_path, RunnerConfig())
    fresh = json.loads((tmp_path / SUMMARY).read_text())["stances"]
    old = [
        t.model_copy(update={"reward": t.reward.model_copy(update={"stance": None})})
        for t in read_traces(tmp_path / TRACES).done
    ]
    assert set(stance_matrix(old)["happy"]) >= {UNKNOWN}
    (tmp_path / TRACES).write_text("".join(t.model_dump_json() + "\n" for t in old))

    rejudge_eval(tmp_path, {t.id: t for t in tasks})

    assert json.loads((tmp_path / SUMMARY).read_text())["stances"] == fresh


def test_decline_rates_split_tasks_to_be_declined_from_tasks_to_be_done():
    tasks = load_tasks("fixtures").tasks
    to_decline = sum(1 for t in tasks if t.branch_kind in ("refuse", "adversarial"))
    refuser = decline_rates(stance_matrix(_episodes("refuse")))
    assert refuser == {
        "to_decline": {"declined": to_decline, "episodes": to_decline},
        "to_do": {"declined": len(tasks) - to_decline, "episodes": len(tasks) - to_decline},
    }  # declines everything: no difference between the two
    oracle = decline_rates(stance_matrix(_episodes("oracle")))
    assert oracle["to_decline"]["declined"] == to_decline and oracle["to_do"]["declined"] == 0
