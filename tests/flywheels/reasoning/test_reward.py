from agentwheel.flywheels.reasoning.generators import render
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.reward import ReasoningReward
from agentwheel.flywheels.reasoning.seeds import generate_seeds
from agentwheel.settings.answer_format import AnswerFormat

STATED = Problem(id="p", question="Half of a cake?", answer="1/2", source="t")


def test_reward_is_correctness_plus_a_small_format_term():
    reward = ReasoningReward()
    assert reward(STATED, "It is \\boxed{0.5}") == 1.1
    assert reward(STATED, "so the answer is 1/2") == 1.0
    assert reward(STATED, "\\boxed{0.25}") == 0.1
    assert reward(STATED, "no idea") == 0.0
    parts = reward.breakdown(STATED, "\\boxed{\\frac{1}{2}}")
    assert (parts.correctness, parts.format, parts.extracted) == (1.0, 0.1, "\\frac{1}{2}")


def test_reward_uses_the_generator_checker_for_procedural_problems():
    problem = generate_seeds("knights_knaves", 1, seed=0)[0]
    reward = ReasoningReward(format_weight=0.0)
    assert reward(problem, f"\\boxed{{{problem.answer}}}") == 1.0
    assert reward.breakdown(problem, f"\\boxed{{{problem.answer}}}").checked_by == "generator"
    terms = render(problem.generator).entry["metadata"]["knight_knave_terms"]
    good, bad = str(terms["knight"]), str(terms["knave"])
    flipped = problem.answer.replace(good, "@").replace(bad, good).replace("@", bad)
    assert flipped != problem.answer
    assert reward(problem, f"\\boxed{{{flipped}}}") == 0.0


def test_reward_follows_the_configured_format():
    reward = ReasoningReward(AnswerFormat(name="hash"), correct_weight=0.9, format_weight=0.1)
    assert reward(STATED, "work\n#### 1/2") == 1.0
    assert reward(STATED, "\\boxed{1/2}") == 0.9
