from __future__ import annotations

import pytest

from agentwheel.core.messages import Message, ToolCall
from agentwheel.llm.template import (
    ChatTemplateRenderer,
    choose_template,
    tool_chat_template,
)
from agentwheel.llm.tool_calls import format_tool_call
from tests.envs.sample_tasks import TOOLS

EOT_TEXT = "<|im_end|>"


def _call(call_id: str, order_id: str) -> ToolCall:
    return ToolCall(id=call_id, name="get_order", arguments={"order_id": order_id})


def _result(call_id: str, content: str) -> Message:
    return Message(role="tool", content=content, tool_call_id=call_id, name="get_order")


OPENING = [
    Message(role="system", content="Orders can be cancelled only while pending."),
    Message(role="user", content="Please cancel O-1 and tell me about Ö-2 🙂"),
]
# One of every turn shape: prose + two calls, two results in one turn, a call with no
# prose, an unusual result, a plain answer, a new user turn, a final answer.
CONVERSATION = [
    *OPENING,
    Message(
        role="assistant", content="Let me look.", tool_calls=[_call("a", "O-1"), _call("b", "Ö-2")]
    ),
    _result("a", '{"order_id": "O-1", "status": "pending"}'),
    _result("b", '{"error": "not_found"}'),
    Message(role="assistant", tool_calls=[_call("c", "O-1")]),
    _result("c", "  \n\nplain text with <angle> brackets\n"),
    Message(role="assistant", content="O-1 is pending; Ö-2 does not exist.\n\n"),
    Message(role="user", content="Thanks!\n"),
    Message(role="assistant", content="You're welcome."),
]


@pytest.fixture(scope="module")
def renderer(tokenizer) -> ChatTemplateRenderer:
    return ChatTemplateRenderer(tokenizer)


def _assistant_turns(messages: list[Message]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.role == "assistant"]


def rollout_ids(
    renderer: ChatTemplateRenderer, messages: list[Message], truncate_at: int | None = None
) -> list[int]:
    """The trace a rollout builds: opening prompt, then per assistant turn its generated ids
    (the template's text for the turn, tokenized alone, plus the end-of-turn token unless
    `truncate_at` cuts generation short), the closing ids and the next turns' delta."""
    turns = _assistant_turns(messages)
    ids = renderer.initial_ids(messages[: turns[0]], TOOLS)
    for position, turn in enumerate(turns):
        generated = [
            *renderer.encode(renderer.assistant_text(messages[turn])),
            renderer.end_of_turn_id,
        ]
        finish = "stop"
        if truncate_at is not None:
            generated, finish = generated[:truncate_at], "length"
        ids += generated + renderer.close_turn_ids(generated, finish)
        if position + 1 < len(turns):
            ids += renderer.continuation_ids(messages[turn + 1 : turns[position + 1]])
    return ids


def test_smollm2_has_no_tool_template_so_ours_is_used(tokenizer, renderer):
    assert "tools" not in tokenizer.chat_template
    assert renderer.template == tool_chat_template()


def test_a_tool_aware_tokenizer_template_is_kept(tokenizer):
    class ToolAware:
        chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}{{ tools }}"

    assert choose_template(ToolAware()) == ToolAware.chat_template
    assert choose_template(tokenizer) == tool_chat_template()


def test_no_default_system_prompt_is_injected(renderer):
    text = renderer.render_text([Message(role="user", content="hi")], add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tools_render_into_the_system_message(renderer):
    text = renderer.render_text(OPENING, TOOLS, add_generation_prompt=True)
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\n" + OPENING[0].content + "\n\n# Tools\n")
    assert "<tools>\n" in system and "\n</tools>" in system
    assert system.count('{"type": "function", "function": {"name": ') == len(TOOLS)
    assert (
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
        in system
    )
    # Without a system message the tools still get a system turn, and nothing else does.
    alone = renderer.render_text(OPENING[1:], TOOLS)
    assert alone.startswith("<|im_start|>system\n# Tools\n")


def test_assistant_tool_calls_use_the_parsers_exact_format(renderer):
    with_prose = CONVERSATION[2]
    assert renderer.assistant_text(with_prose) == "\n".join(
        [
            "Let me look.",
            format_tool_call("get_order", {"order_id": "O-1"}),
            format_tool_call("get_order", {"order_id": "Ö-2"}),
        ]
    )
    assert renderer.assistant_text(CONVERSATION[5]) == format_tool_call(
        "get_order", {"order_id": "O-1"}
    )


def test_tool_results_share_one_user_turn(renderer):
    delta = renderer.decode(renderer.continuation_ids(CONVERSATION[3:5]))
    assert delta == (
        "<|im_start|>user\n<tool_response>\n"
        '{"order_id": "O-1", "status": "pending"}\n</tool_response>\n<tool_response>\n'
        '{"error": "not_found"}\n</tool_response><|im_end|>\n<|im_start|>assistant\n'
    )


def test_end_of_turn_is_im_end_then_newline(renderer, tokenizer):
    assert renderer.end_of_turn_id == tokenizer.convert_tokens_to_ids(EOT_TEXT)
    assert renderer.decode(renderer.separator_ids) == "\n"
    eot = renderer.end_of_turn_id
    assert renderer.close_turn_ids([5, 6, eot], "stop") == renderer.separator_ids
    assert renderer.close_turn_ids([5, 6], "length") == [eot, *renderer.separator_ids]
    assert renderer.close_turn_ids([], "length") == [eot, *renderer.separator_ids]


@pytest.mark.parametrize("truncate_at", [None, 3])
def test_rollout_ids_equal_the_template_render_of_the_whole_conversation(renderer, truncate_at):
    messages = CONVERSATION
    if truncate_at is not None:
        # A turn cut short by the length limit is closed by close_turn_ids; the template
        # sees the truncated text as the assistant content.
        messages = [
            Message(
                role="assistant",
                content=renderer.decode(renderer.encode(renderer.assistant_text(m))[:truncate_at]),
            )
            if m.role == "assistant"
            else m
            for m in CONVERSATION
        ]
        ids = rollout_ids(renderer, CONVERSATION, truncate_at=truncate_at)
    else:
        ids = rollout_ids(renderer, messages)
    whole = renderer.render_text(messages, TOOLS)
    assert renderer.decode(ids) == whole
    assert ids == renderer.encode(whole)


def test_conversation_ids_mask_exactly_the_assistant_tokens(renderer):
    ids, mask = renderer.conversation_ids(CONVERSATION, TOOLS)
    assert ids == rollout_ids(renderer, CONVERSATION)
    assert len(mask) == len(ids)
    spans: list[list[int]] = []
    for i, (token, bit) in enumerate(zip(ids, mask, strict=True)):
        if bit and (i == 0 or not mask[i - 1]):
            spans.append([])
        if bit:
            spans[-1].append(token)
    expected = [
        renderer.assistant_text(CONVERSATION[t]) + EOT_TEXT for t in _assistant_turns(CONVERSATION)
    ]
    assert [renderer.decode(span) for span in spans] == expected
    # Everything unmasked is template or environment text.
    unmasked = renderer.decode([t for t, bit in zip(ids, mask, strict=True) if not bit])
    assert "You're welcome." not in unmasked and "Let me look." not in unmasked
    assert unmasked.count("<|im_start|>assistant\n") == len(expected)


def test_conversation_ids_leave_out_turns_after_the_last_assistant_turn(renderer):
    ids, _ = renderer.conversation_ids([*CONVERSATION, Message(role="user", content="Bye")], TOOLS)
    assert ids == renderer.conversation_ids(CONVERSATION, TOOLS)[0]
    with pytest.raises(ValueError, match="assistant turn"):
        renderer.conversation_ids(OPENING, TOOLS)


def test_another_template_without_a_separator_renders_consistently(tokenizer):
    """A non-ChatML template: turns end in <|endoftext|> with nothing after it, and it
    rejects a tool turn that does not follow a user turn, so deltas need a longer base."""
    template = (
        "{% for m in messages %}"
        "{% if m.role == 'tool' and (loop.first or messages[loop.index0 - 1].role == 'system') %}"
        "{{ raise_exception('tool turn without a user turn') }}{% endif %}"
        "{{ '### ' + m.role + ':\n' + m.content + '<|endoftext|>' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '### assistant:\n' }}{% endif %}"
    )
    renderer = ChatTemplateRenderer(tokenizer, template=template)
    assert renderer.decode([renderer.end_of_turn_id]) == "<|endoftext|>"
    assert renderer.separator_ids == []
    messages = [
        *OPENING,
        Message(role="assistant", content="Checking."),
        _result("a", '{"status": "pending"}'),
        Message(role="assistant", content="It is pending."),
    ]
    ids, mask = renderer.conversation_ids(messages)
    assert renderer.decode(ids) == renderer.render_text(messages)
    assert renderer.decode([t for t, bit in zip(ids, mask, strict=True) if bit]) == (
        "Checking.<|endoftext|>It is pending.<|endoftext|>"
    )
