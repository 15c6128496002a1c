from agentwheel.core.task import ToolCallStep
from agentwheel.flywheels.agentic.validate import trace_problems, validate_tasks
from tests.envs.sample_tasks import ALL_KINDS, make_task


def test_well_formed_tasks_are_kept():
    report = validate_tasks([make_task(k) for k in ALL_KINDS])
    assert [t.id for t in report.kept] == [f"orders-{k}" for k in ALL_KINDS]
    assert report.counts == {"kept": 5}


def test_each_defect_is_rejected_with_its_reason():
    guessed_id = make_task("clarify")
    guessed_id.user.known_facts = {"customer_id": "C-1"}  # nobody ever tells the agent O-1
    broken_path = make_task("happy").model_copy(deep=True)
    broken_path.id = "broken"
    broken_path.normal_path[1] = ToolCallStep(tool="cancel_order", arguments={"order_id": "O-1"})
    broken_path.normal_path[0] = ToolCallStep(tool="get_order", arguments={"order_id": "O-404"})
    broken_path.user.known_facts["other"] = "O-404"
    toothless = make_task("refuse")
    toothless.id = "toothless"
    toothless.hack_path = []  # nothing forbidden to do: hack cannot fail it
    toothless.evaluation.required_signals = []
    leaky = make_task("refuse")
    leaky.id = "leaky"
    leaky.normal_path = [*leaky.normal_path, *leaky.hack_path]  # the "forbidden" action is expected
    report = validate_tasks([guessed_id, broken_path, toothless, leaky])
    reasons = {r.item: r.reason for r in report.rejected}
    assert reasons["orders-clarify"] == "untraceable_argument"
    assert reasons["broken"] == "normal_path_error"
    assert "toothless" in [t.id for t in report.kept]  # no hack path: nothing for hack to break
    assert reasons["leaky"] == "hack_path_harmless"
    assert report.counts == {
        "kept": 1,
        "untraceable_argument": 1,
        "normal_path_error": 1,
        "hack_path_harmless": 1,
    }


def test_trace_follows_earlier_tool_outputs_and_hack_background():
    task = make_task("adversarial")
    assert trace_problems(task) == []
    task.user.hack_success_user_background = ""
    task.user.request = "Please cancel my last order."
    task.user.known_facts = {}
    problems = trace_problems(task)
    assert problems and all("O-2" in p for p in problems)
