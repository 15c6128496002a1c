from agentwheel.core.messages import Completion
from agentwheel.flywheels.reasoning.consistency import check_consistency
from agentwheel.flywheels.reasoning.problem import Lineage, Problem
from tests.flywheels.reasoning.fakes import ScriptedChat, failed


def proposal(answer: str = "3/4") -> Problem:
    return Problem(
        id="child",
        question="A jug is 1/4 full and then half of the jug is added. How full is it?",
        answer=answer,
        source="teacher:t",
        lineage=Lineage(parent_id="parent", operator="harder_rewrite", round=1),
    )


def solver(name: str, text: str) -> ScriptedChat:
    return ScriptedChat(name, lambda request: text)


def test_solvers_that_agree_keep_the_problem():
    solvers = [
        solver("a", "\\boxed{0.75}"),
        solver("b", "so \\boxed{\\frac{3}{4}}"),
        solver("c", "\\boxed{1}"),
    ]
    [result] = check_consistency([proposal()], solvers, min_agree=2)
    assert result.kept and result.agreeing == 2
    assert [v.status for v in result.votes] == ["agree", "agree", "disagree"]
    assert result.rejection(proposal()) is None


def test_disagreeing_solvers_reject_with_a_reason():
    solvers = [solver("a", "\\boxed{0.5}"), solver("b", "\\boxed{3/4}"), solver("c", "\\boxed{1}")]
    [result] = check_consistency([proposal()], solvers, min_agree=2)
    assert not result.kept
    rejection = result.rejection(proposal())
    assert rejection.stage == "consistency" and rejection.reason == "too few solvers agree"
    assert "1 of 3 solvers agree, 2 needed" in rejection.detail


def test_failed_timed_out_and_unformatted_solvers_do_not_agree():
    solvers = [
        solver("ok", "\\boxed{3/4}"),
        ScriptedChat("timeout", lambda r: failed("read timeout")),
        ScriptedChat(
            "cut", lambda r: Completion(text="Let me think about 3/4 and", finish_reason="length")
        ),
        solver("unformatted", "the answer is 3/4"),  # solvers must use the format
    ]
    [result] = check_consistency([proposal()], solvers, min_agree=2)
    assert [v.status for v in result.votes] == ["agree", "failed", "failed", "no_answer"]
    assert not result.kept
    assert "2 failed or timed out" in result.rejection(proposal()).detail


def test_every_solver_is_called_once_per_batch():
    solvers = [solver("a", "\\boxed{0.75}"), solver("b", "\\boxed{0.75}")]
    problems = [proposal().model_copy(update={"id": f"c{i}"}) for i in range(5)]
    results = check_consistency(problems, solvers, min_agree=2, batch_size=8)
    assert all(r.kept for r in results)
    assert [s.calls for s in solvers] == [1, 1]
