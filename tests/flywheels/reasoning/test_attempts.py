from agentwheel.core.messages import SamplingParams
from agentwheel.flywheels.reasoning.attempts import collect_attempts
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.seeds import generate_seeds
from tests.flywheels.reasoning.fakes import (
    CountingArithmeticPolicy,
    ScriptedChat,
    failed,
    last_user,
)


def test_pass_rates_and_wrong_answers_are_kept():
    problems = generate_seeds("chain_sum", 3, {"min_terms": 2, "max_terms": 2}, seed=2)
    policy = CountingArithmeticPolicy()
    seen = []
    records = collect_attempts(
        problems, policy, n=4, params=SamplingParams(temperature=0.7), on_record=seen.append
    )
    assert seen == records
    for problem, record in zip(problems, records, strict=True):
        assert record.problem == problem and record.pass_rate == 0.5 and record.passes == 2
        assert record.wrong_answers == [str(int(problem.answer) + 1)]
        assert len(record.samples) == 4 and all(
            s.checked_by == "generator" for s in record.samples if s.correct
        )


def test_requests_are_batched_with_whole_problems():
    problems = [
        Problem(id=f"p{i}", question=f"What is {i} + 1?", answer=str(i + 1), source="t")
        for i in range(5)
    ]
    policy = ScriptedChat("echo", lambda r: "\\boxed{1}")
    collect_attempts(problems, policy, n=3, params=SamplingParams(), batch_size=7)
    assert policy.calls == 3  # 2 problems (6 requests) per call
    prompts = [last_user(r) for r in policy.requests]
    assert prompts[:3] == [prompts[0]] * 3 and prompts[0].endswith("\\boxed{}.")


def test_failed_requests_count_as_wrong_and_are_flagged():
    problem = Problem(id="p", question="What is 2 + 2?", answer="4", source="t")
    flaky = iter(["\\boxed{4}", failed(), "\\boxed{5}", "the answer is 4"])
    policy = ScriptedChat("flaky", lambda r: next(flaky))
    [record] = collect_attempts([problem], policy, n=4, params=SamplingParams())
    assert record.passes == 2 and record.failed_requests == 1
    assert record.samples[1].error == "timeout after 30s"
    assert [s.followed_format for s in record.samples] == [True, False, True, False]
