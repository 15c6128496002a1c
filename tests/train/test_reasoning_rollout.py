"""Reasoning RL rollouts: graded rewards, agent-only loss masks, dynamic sampling."""

from __future__ import annotations

import pytest

from agentwheel.core.messages import ChatRequest, Completion, SamplingParams
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.reward import ReasoningReward
from agentwheel.train.reasoning_rollout import answer_groups, collect_reasoning_groups
from agentwheel.train.rollout import TaskStream
from tests.train.conftest import tiny_chat_model


@pytest.fixture(scope="module")
def tiny():
    return tiny_chat_model()


class Scripted:
    """Answers every request with the next text of a script, as a token back-end would."""

    def __init__(self, model, texts: list[str]):
        self.model, self.texts, self.calls = model, list(texts), 0

    def __call__(self, requests: list[ChatRequest], params: SamplingParams) -> list[Completion]:
        out = []
        for request in requests:
            assert request.prompt_ids is not None
            text = self.texts[self.calls % len(self.texts)]
            self.calls += 1
            ids = self.model.tokenizer.encode(text, add_special_tokens=False)
            out.append(Completion(text=text, completion_ids=ids, logprobs=[-0.5] * len(ids)))
        return out


def problem(pid: str, answer: str) -> Problem:
    return Problem(id=pid, question=f"What is {answer} plus zero?", answer=answer, source="test")


def test_answers_are_graded_and_only_answer_tokens_are_trained(tiny, monkeypatch):
    texts = [r"so it is \boxed{42}", "the answer is 42", r"\boxed{41}", "no idea"]
    monkeypatch.setattr(tiny, "chat", Scripted(tiny, texts))
    (group,) = answer_groups(tiny, [problem("p", "42")], 4, SamplingParams(), ReasoningReward())
    rewards = [r for _, r in group]
    # correct + format, correct without the box, box around a wrong answer, nothing
    assert rewards == pytest.approx([1.1, 1.0, 0.1, 0.0])
    assert [t.passed for t, _ in group] == [True, True, False, False]
    for (trajectory, _), text in zip(group, texts, strict=True):
        tokens = trajectory.tokens
        generated = [i for i, m in zip(tokens.ids, tokens.loss_mask, strict=True) if m]
        assert generated == tiny.tokenizer.encode(text, add_special_tokens=False)
        assert tokens.loss_mask[0] == 0 and sum(tokens.loss_mask) == len(generated)
        assert trajectory.messages[0].role == "user" and trajectory.messages[1].content == text


def test_dynamic_sampling_drops_problems_with_equal_rewards(tiny, monkeypatch):
    # Two answers per problem: the first problem gets both right (dropped), the second
    # one right and one wrong (kept).
    monkeypatch.setattr(
        tiny, "chat", Scripted(tiny, [r"\boxed{1}", r"\boxed{1}", r"\boxed{2}", r"\boxed{3}"])
    )
    stream = TaskStream([problem("a", "1"), problem("b", "2")], seed=0)
    stream.take = lambda n: [problem("a", "1"), problem("b", "2")][:n]  # type: ignore[method-assign]
    batch = collect_reasoning_groups(
        tiny, lambda a: SamplingParams(seed=a), stream, 2, 2, ReasoningReward(), max_attempts=1
    )
    assert batch.groups_dropped == 1 and len(batch.groups) == 1
    assert [t.task_id for t in batch.groups[0]] == ["b", "b"]
    assert batch.rewards == [pytest.approx([1.1, 0.1])]
    assert batch.exhausted and len(batch.trajectories) == 4
