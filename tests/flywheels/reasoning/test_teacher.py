from agentwheel.core.rejection import Rejection
from agentwheel.flywheels.reasoning.attempts import AttemptRecord, Sample
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.teacher import TeacherEvolver, parse_teacher_output
from tests.flywheels.reasoning.fakes import ScriptedChat, failed, last_user

PARENT = Problem(
    id="bakery",
    question="A bakery bakes 12 trays of 9 muffins and sells 68. How many muffins are left?",
    answer="40",
    source="test",
)
GOOD = (
    "<problem>A bakery bakes 12 trays of 9 muffins, sells 68, then bakes 2 more trays. "
    "How many muffins are there now?</problem>\n<answer>58</answer>"
)


def attempted(problem: Problem = PARENT) -> AttemptRecord:
    sample = Sample(
        text="",
        extracted="39",
        correct=False,
        followed_format=True,
        checked_by="t",
        finish_reason="stop",
    )
    return AttemptRecord.from_samples(problem, "policy", [sample, sample])


def test_garbage_is_retried_with_the_error_then_rejected_with_a_reason():
    teacher = ScriptedChat(
        "garbage", lambda request: "Sure! Here is a great problem about muffins."
    )
    evolver = TeacherEvolver(teacher, operators=["harder_rewrite"], max_retries=2)
    [outcome] = evolver.evolve_all([attempted()], round_=1)
    assert isinstance(outcome, Rejection)
    assert outcome.stage == "teacher_output" and outcome.reason == "wrong_problem_blocks"
    assert outcome.detail.startswith("after 3 tries")
    assert outcome.context == {"parent_id": "bakery", "operator": "harder_rewrite"}
    assert teacher.calls == 3
    last = teacher.requests[-1]
    assert [m.role for m in last.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert "could not be used: expected exactly one <problem> block" in last.messages[-1].content


def test_a_teacher_that_fixes_its_reply_after_feedback_is_accepted():
    def reply(request):
        return (
            GOOD if len(request.messages) > 1 else "<problem>too short</problem><answer>1</answer>"
        )

    teacher = ScriptedChat("learner", reply)
    [child] = TeacherEvolver(teacher, operators=["harder_rewrite"]).evolve_all([attempted()], 1)
    assert isinstance(child, Problem)
    assert child.answer == "58" and child.meta["answer_status"] == "proposed"
    assert child.lineage.parent_id == "bakery" and child.lineage.operator == "harder_rewrite"
    assert child.source == "teacher:learner" and child.generator is None
    # the harder rewrite prompt shows the policy's wrong answer
    assert "39" in teacher.requests[0].messages[0].content


def test_failed_teacher_calls_are_retried_then_rejected():
    teacher = ScriptedChat("down", lambda request: failed("HTTP 503"))
    [outcome] = TeacherEvolver(teacher, operators=["self_instruct"], max_retries=1).evolve_all(
        [attempted()], 1
    )
    assert outcome.reason == "teacher_call_failed" and "HTTP 503" in outcome.detail
    assert teacher.calls == 2


def test_all_operators_run_in_one_batched_call_per_wave():
    def reply(request):
        prompt = last_user(request)
        if "persona" in prompt:
            answer = prompt.split("CORRECT ANSWER: ")[1].split()[0]
            return (
                "<problem>A beekeeper keeps some hives and moves frames between them; "
                f"the count works out the same.</problem><answer>{answer}</answer>"
            )
        return GOOD

    teacher = ScriptedChat("t", reply)
    other = PARENT.model_copy(
        update={"id": "other", "question": "What is 19 times 3, minus 7?", "answer": "50"}
    )
    outcomes = TeacherEvolver(teacher).evolve_all([attempted(), attempted(other)], 1)
    assert teacher.calls == 1 and len(teacher.requests) == 6
    assert all(isinstance(o, Problem) for o in outcomes)
    assert [o.lineage.operator for o in outcomes][:3] == [
        "harder_rewrite",
        "persona_rewrite",
        "self_instruct",
    ]
    persona = outcomes[1]
    assert persona.lineage.note.startswith("persona: ")


def test_validation_reasons():
    def reason(text, operator="harder_rewrite"):
        result = parse_teacher_output(text, operator, PARENT)
        return getattr(result, "reason", "ok")

    assert reason(GOOD) == "ok"
    assert reason("<problem>x</problem>") == "wrong_answer_blocks"
    assert (
        reason(GOOD.replace("<answer>58</answer>", "<answer>many muffins</answer>"))
        == "answer_not_checkable"
    )
    assert reason(GOOD.replace("58", "\\boxed{58}")) == "ok"
    assert reason(f"<problem>{PARENT.question}</problem><answer>40</answer>") == "same_as_parent"
    assert reason(GOOD, operator="persona_rewrite") == "answer_changed"
    assert reason(GOOD + GOOD) == "wrong_problem_blocks"
