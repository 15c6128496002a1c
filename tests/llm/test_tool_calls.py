from agentwheel.llm.tool_calls import format_tool_call, parse_tool_calls
from tests.envs.sample_tasks import TOOLS


def test_several_calls_in_one_turn_parse_in_order():
    text = (
        "Let me check. "
        + format_tool_call("get_order", {"order_id": "O-1"})
        + format_tool_call("get_order", {"order_id": "O-2"})
    )
    prose, calls, errors = parse_tool_calls(text, TOOLS)
    assert prose == "Let me check."
    assert [c.arguments["order_id"] for c in calls] == ["O-1", "O-2"]
    assert [c.id for c in calls] == ["call_0", "call_1"]
    assert errors == []


def test_malformed_unknown_and_mistyped_calls_become_typed_errors():
    text = (
        '<tool_call>{"name": "get_order", "arguments": {"order_id": </tool_call>'
        '<tool_call>{"name": "drop_table", "arguments": {}}</tool_call>'
        '<tool_call>{"name": "get_order", "arguments": {"order_id": 17}}</tool_call>'
        '<tool_call>{"name": "get_order", "arguments": {}}</tool_call>'
        '<tool_call>["get_order"]</tool_call>'
    )
    _, calls, errors = parse_tool_calls(text, TOOLS)
    assert calls == []
    assert [e.kind for e in errors] == [
        "malformed_json",
        "unknown_tool",
        "bad_arguments",
        "bad_arguments",
        "missing_name",
    ]
    assert "must be string" in errors[2].detail
    assert "missing required" in errors[3].detail


def test_unclosed_last_block_still_parses():
    _, calls, errors = parse_tool_calls(
        '<tool_call>\n{"name": "get_order", "arguments": {"order_id": "O-3"}}', TOOLS
    )
    assert [c.arguments for c in calls] == [{"order_id": "O-3"}] and errors == []


def test_plain_text_has_no_calls():
    assert parse_tool_calls("I'm sorry, I can't do that.", TOOLS) == (
        "I'm sorry, I can't do that.",
        [],
        [],
    )
