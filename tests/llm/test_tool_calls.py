import pytest

from agentwheel.core.messages import ToolCallError
from agentwheel.core.task import ToolSpec
from agentwheel.llm.tool_calls import (
    MAX_ARGUMENT_CHARS,
    MAX_CALL_CHARS,
    MAX_CALLS_PER_REPLY,
    MAX_JSON_DEPTH,
    MAX_REPLY_CHARS,
    cap_reply,
    check_call,
    format_tool_call,
    json_depth,
    parse_tool_calls,
)
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


# --- bounds: what a model writes never raises out of the parser -------------------------

INT_TOOL = ToolSpec(
    name="book_days",
    description="Book leave days.",
    parameters={
        "type": "object",
        "properties": {"days": {"type": "integer"}, "rate": {"type": "number"}},
        "required": ["days"],
    },
    kind="action",
)


def body(arguments_json: str, name: str = "book_days") -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {arguments_json}}}</tool_call>'


def test_a_thousand_nested_brackets_are_an_over_limit_error_not_a_recursion_error():
    deep = "[" * 1000 + "]" * 1000
    _, calls, errors = parse_tool_calls(body(f'{{"days": {deep}}}'), [INT_TOOL])
    assert calls == []
    assert [e.kind for e in errors] == ["over_limit"]
    assert f"over {MAX_JSON_DEPTH}" in errors[0].detail
    # the same body handed over as an OpenAI `arguments` string
    error = check_call("book_days", f'{{"days": {deep}}}', [INT_TOOL], "c0")
    assert isinstance(error, ToolCallError) and error.kind == "over_limit"


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert json_depth('{"a": "[[[[[[[[[[[[[[[[[[[[", "b": [1, {"c": "\\"]]]"}]}') == 3
    text = format_tool_call("get_order", {"order_id": "[" * 50})
    _, calls, errors = parse_tool_calls(text, TOOLS)
    assert errors == [] and calls[0].arguments == {"order_id": "[" * 50}


@pytest.mark.parametrize(
    ("arguments_json", "kind", "detail"),
    [
        ('{"days": 9223372036854775808}', "bad_arguments", "integer range"),
        ('{"days": -9223372036854775809}', "bad_arguments", "integer range"),
        ('{"days": 1e300}', "bad_arguments", "integer range"),
        ('{"days": ' + "9" * 5000 + "}", "over_limit", "characters"),
        ('{"days": 3, "rate": NaN}', "malformed_json", "NaN is not a JSON number"),
        ('{"days": 3, "rate": Infinity}', "malformed_json", "Infinity"),
        ('{"days": 3, "rate": 1e400}', "bad_arguments", "finite"),
        ('{"days": "3"}', "bad_arguments", "must be integer"),
        ('{"days": true}', "bad_arguments", "must be integer"),
    ],
)
def test_numbers_past_what_sqlite_or_json_holds_are_typed_errors(arguments_json, kind, detail):
    _, calls, errors = parse_tool_calls(body(arguments_json), [INT_TOOL])
    assert calls == [] and [e.kind for e in errors] == [kind]
    assert detail in errors[0].detail


def test_the_largest_sqlite_integer_and_an_integral_float_are_accepted_as_ints():
    _, calls, errors = parse_tool_calls(body('{"days": 9223372036854775807}'), [INT_TOOL])
    assert errors == [] and calls[0].arguments == {"days": 2**63 - 1}
    _, calls, _ = parse_tool_calls(body('{"days": 10.0, "rate": 2.0}'), [INT_TOOL])
    days, rate = calls[0].arguments["days"], calls[0].arguments["rate"]
    assert (days, type(days)) == (10, int)
    assert (rate, type(rate)) == (2.0, float)  # a number stays what the model wrote


def test_huge_strings_bodies_and_replies_are_bounded():
    long_id = "x" * (MAX_ARGUMENT_CHARS + 1)
    _, _, errors = parse_tool_calls(format_tool_call("get_order", {"order_id": long_id}), TOOLS)
    assert [e.kind for e in errors] == ["over_limit"] and "characters" in errors[0].detail
    padded = format_tool_call("get_order", {"order_id": "O-1", "pad": " " * MAX_CALL_CHARS})
    _, _, errors = parse_tool_calls(padded, TOOLS)
    assert [e.kind for e in errors] == ["over_limit"]
    assert len(errors[0].raw) < MAX_CALL_CHARS + 100  # the error does not carry the whole body
    huge = "blah " * 6_000_000  # 30 MB
    prose, calls, errors = parse_tool_calls(huge + format_tool_call("get_order", {}), TOOLS)
    assert len(prose) <= MAX_REPLY_CHARS and calls == [] and errors == []  # the tail is cut


def test_only_the_first_calls_of_a_reply_run():
    text = format_tool_call("get_order", {"order_id": "O-1"}) * (MAX_CALLS_PER_REPLY + 5)
    _, calls, errors = parse_tool_calls(text, TOOLS)
    assert len(calls) == MAX_CALLS_PER_REPLY
    assert [e.kind for e in errors] == ["over_limit"] and errors[0].detail.startswith("5 ")


def test_unknown_tool_names_and_odd_values_give_short_details():
    name = "drop_" * 1_000
    _, _, errors = parse_tool_calls(body("{}", name=name), TOOLS)
    assert errors[0].kind == "unknown_tool" and len(errors[0].detail) < 300
    nested = check_call("get_order", {"order_id": [[[[1]]]]}, TOOLS, "c0")
    assert isinstance(nested, ToolCallError) and "got list a list" in nested.detail
    lone = check_call("get_order", {"order_id": "\ud800"}, TOOLS, "c0")
    assert isinstance(lone, ToolCallError) and "surrogate" in lone.detail


def test_replies_are_made_safe_to_write_as_utf8():
    text = cap_reply("hi \ud83d there")
    assert text == "hi \ufffd there"
    text.encode("utf-8")
