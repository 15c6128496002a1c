import pytest
from pydantic import ValidationError

from agentwheel.core.task import Task, ToolSpec, call_key
from tests.envs.sample_tasks import make_task


def test_tool_takes_at_most_three_scalar_parameters():
    params = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(4)}}
    with pytest.raises(ValidationError, match="at most 3"):
        ToolSpec(name="t", description="", parameters=params, kind="query")
    nested = {"type": "object", "properties": {"p": {"type": "object"}}}
    with pytest.raises(ValidationError, match="scalar type"):
        ToolSpec(name="t", description="", parameters=nested, kind="query")


def test_path_calling_unknown_tool_is_rejected():
    data = make_task("happy").model_dump()
    data["normal_path"][0]["tool"] = "delete_everything"
    with pytest.raises(ValidationError, match="unknown tool 'delete_everything'"):
        Task.model_validate(data)


def test_sqlite_world_must_implement_every_tool():
    data = make_task("happy").model_dump()
    del data["sqlite"]["tools"]["cancel_order"]
    with pytest.raises(ValidationError, match="cancel_order"):
        Task.model_validate(data)


def test_call_key_ignores_argument_order_and_integral_floats():
    assert call_key("t", {"a": 1, "b": "x"}) == call_key("t", {"b": "x", "a": 1.0})
    assert call_key("t", {"a": 1}) != call_key("t", {"a": 2})


def test_hack_action_keys_exclude_normal_path_and_queries():
    task = make_task("refuse")
    assert task.hack_action_keys() == {call_key("cancel_order", {"order_id": "O-2"})}
    assert make_task("happy").hack_action_keys() == set()
