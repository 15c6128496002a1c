from agentwheel.core.messages import Message
from agentwheel.envs.trajectory import (
    AnswerCheck,
    EpisodeCounts,
    EpisodeTimings,
    RewardBreakdown,
    Trajectory,
)
from agentwheel.eval.cost import cost_report


def _trajectory(task: str, passed: bool, seconds: float, calls: int) -> Trajectory:
    return Trajectory(
        task_id=task,
        trial=0,
        domain="search",
        branch_kind="happy",
        policy="p",
        backend="search",
        messages=[Message(role="user", content="q")],
        reward=RewardBreakdown(
            passed=passed,
            state_matches=passed,
            hack_action_ran=False,
            answer=AnswerCheck(
                submitted="x", correct=True, evidence_missing=[] if passed else ["d"]
            ),
        ),
        termination="user_ended",
        counts=EpisodeCounts(tool_calls=calls, generated_tokens=10 * calls),
        timings=EpisodeTimings(total_s=seconds, model_s=seconds / 2),
    )


def test_cost_report_has_latency_quantiles_tokens_calls_and_an_interval():
    runs = [_trajectory(f"t{i}", i % 4 != 0, seconds=float(i), calls=i) for i in range(1, 21)]
    report = cost_report(runs)
    assert report["n_episodes"] == 20 and report["success_rate"] == 0.75
    low, high = report["success_ci95"]
    assert low < 0.75 < high
    assert report["latency_s"]["median"] == 10.5
    assert 19.0 <= report["latency_s"]["p95"] <= 20.0
    assert report["generated_tokens"]["mean"] == 105.0
    assert report["answer_correct_rate"] == 1.0 and report["answer_with_evidence_rate"] == 0.75
