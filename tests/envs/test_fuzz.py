"""Fuzzing what a model can write: the tool-call parser and both tool back-ends never raise,
and the database answers a known query correctly afterwards.

Inputs mix random text and JSON with the shapes that broke things: deep nesting, integers
past SQLite's range, NaN and infinities, lone surrogates and other unicode, SQL injection
strings, unknown tools, wrong types, huge strings. Examples are capped to keep it fast.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentwheel.core.dataset import load_tasks
from agentwheel.envs.tool_simulator import parse_json_output
from agentwheel.envs.tools import MockTools, SqliteTools, is_tool_error
from agentwheel.llm.tool_calls import check_call, format_tool_call, parse_tool_calls

TASK = next(t for t in load_tasks("fixtures").tasks if t.id == "retail-happy-01")
assert TASK.sqlite is not None
WORLD = TASK.sqlite
KNOWN_STEP = TASK.normal_path[0]
KNOWN_TOOL = TASK.tool(KNOWN_STEP.tool)
NAMES = [t.name for t in TASK.tools]
PARAMETERS = sorted({p for t in TASK.tools for p in t.properties})

INJECTIONS = [
    "O-20401' OR '1'='1",
    "'; DROP TABLE orders; --",
    "O-20401\"; ATTACH DATABASE '/tmp/x.db' AS x; --",
    ":order_id",
    "%s %d {0}",
    "\x00",
    "\ud800",
    "🙂" * 3,
    "ﬀ\u202e\u200b",
]
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([2**63, -(2**63) - 1, 2**63 - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(INJECTIONS),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "x" * n),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
arguments = st.dictionaries(st.sampled_from([*PARAMETERS, "force", ""]), values, max_size=4)
tool_names = st.sampled_from([*NAMES, "drop_table", "", "get_order; DROP TABLE orders"])


def nested(depth: int, opener: str) -> str:
    closer = {"[": "]", "{": "}"}[opener]
    inner = '"k": ' if opener == "{" else ""
    return (opener + inner) * depth + "1" + closer * depth


def call_text(name: str, args: dict[str, Any]) -> str:
    return format_tool_call(name, args)  # json.dumps writes NaN / Infinity as bare words


model_texts = st.one_of(
    st.text(max_size=200),
    st.builds(call_text, tool_names, arguments),
    st.builds(
        lambda name, depth, opener: (
            f'<tool_call>{{"name": "{name}", "arguments": {{"order_id": {nested(depth, opener)}}}}}'
        ),
        tool_names,
        st.integers(min_value=1, max_value=3000),
        st.sampled_from("[{"),
    ),
    st.builds(lambda junk: f"<tool_call>{junk}</tool_call>", st.text(max_size=300)),
    st.builds(lambda text, n: (text + "<tool_call>") * n, st.text(max_size=20), st.integers(0, 40)),
    st.builds(lambda n: "<tool_call>" + '{"name": "' + "a" * n, st.integers(0, 100_000)),
)


def assert_database_still_answers(tools: SqliteTools | MockTools) -> None:
    assert KNOWN_TOOL is not None
    assert tools.call(KNOWN_TOOL, dict(KNOWN_STEP.arguments)) == KNOWN_STEP.expected_output
    assert isinstance(tools.state_hash(), str)


def run_everywhere(calls: list[tuple[str, Any]]) -> None:
    """Run calls (a tool name and whatever arguments) on both back-ends, unparsed."""
    for tools in (SqliteTools(WORLD), MockTools(TASK)):
        for name, args in calls:
            spec = TASK.tool(name)
            if spec is None:
                continue
            output = tools.call(spec, args)
            json.dumps(output, default=str)  # an output a tool message can carry
        assert_database_still_answers(tools)


@FUZZ
@given(model_texts)
def test_the_parser_never_raises_and_its_calls_run_on_both_back_ends(text):
    prose, calls, errors = parse_tool_calls(text, TASK.tools)
    assert isinstance(prose, str)
    for error in errors:
        assert error.kind in {
            "malformed_json",
            "missing_name",
            "unknown_tool",
            "bad_arguments",
            "over_limit",
        }
        assert len(error.detail) < 1_000
    run_everywhere([(c.name, c.arguments) for c in calls])


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(NAMES), st.one_of(arguments, values)), max_size=6))
def test_back_ends_take_any_arguments_without_raising(calls):
    run_everywhere(calls)


@FUZZ
@given(tool_names, st.one_of(arguments.map(json.dumps), st.text(max_size=100), values))
def test_openai_style_calls_never_raise(name, raw_arguments):
    result = check_call(name, raw_arguments, TASK.tools, "call_0")
    if not hasattr(result, "kind"):
        run_everywhere([(result.name, result.arguments)])


@FUZZ
@given(model_texts)
def test_simulated_tool_outputs_never_raise(text):
    output = parse_json_output(text)
    json.dumps(output, default=str)
    assert not is_tool_error(output) or output["error"] == "no_result"
