"""A saved tokenizer renders, with plain `apply_chat_template`, the ids its model was
trained on: the template is the renderer's, its keywords baked in as defaults."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from agentwheel.llm.hf import HFChatModel
from agentwheel.llm.spec_options import split_spec_options
from agentwheel.llm.template import ChatTemplateRenderer, jinja_literal, with_default_kwargs
from tests.envs.sample_tasks import TOOLS
from tests.llm.conftest import build_tiny_model
from tests.llm.test_template import CONVERSATION, OPENING

THINKING = (
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{% endif %}"
)


def _saved(tmp_path, tokenizer, renderer: ChatTemplateRenderer):
    model = HFChatModel(
        build_tiny_model(len(tokenizer)),
        tokenizer,
        name="tiny",
        template=renderer.template,
        template_kwargs=renderer.template_kwargs,
    )
    model.standalone_tokenizer().save_pretrained(tmp_path)
    return AutoTokenizer.from_pretrained(tmp_path), model


def test_the_saved_tokenizer_renders_the_ids_training_rendered(tmp_path, tokenizer):
    renderer = ChatTemplateRenderer(tokenizer)  # SmolLM2's own template is not the one used
    saved, model = _saved(tmp_path, tokenizer, renderer)
    assert "You are a helpful AI assistant named SmolLM" in tokenizer.chat_template
    assert saved.chat_template == renderer.template != tokenizer.chat_template
    # Not modified in place: the tokenizer is shared with other models.
    assert model.tokenizer.chat_template == tokenizer.chat_template

    messages = [m.openai_dict() for m in CONVERSATION]
    tools = [t.openai_schema() for t in TOOLS]
    ids, _ = renderer.conversation_ids(CONVERSATION, TOOLS)
    assert saved.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=False) == ids
    opening = saved.apply_chat_template(
        [m.openai_dict() for m in OPENING],
        tools=tools,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    assert opening == renderer.initial_ids(OPENING, TOOLS)


def test_template_keywords_are_saved_as_overridable_defaults(tmp_path, tokenizer):
    renderer = ChatTemplateRenderer(tokenizer, THINKING, {"enable_thinking": False})
    saved, _ = _saved(tmp_path, tokenizer, renderer)
    messages = [m.openai_dict() for m in OPENING]
    plain = saved.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert plain == renderer.render_text(OPENING, add_generation_prompt=True)
    assert plain.endswith("<think>\n\n</think>\n\n")
    thinking = saved.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False, enable_thinking=True
    )
    assert thinking.endswith("<|im_start|>assistant\n")


def test_jinja_literals_round_trip_through_a_template(tokenizer):
    value = {"a": [1, 2.5, None, True], "quote": 'say "hi"\n', "ü": False}
    template = with_default_kwargs("{{ x | tojson }}", {"x": value})
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": ""}], chat_template=template, tokenize=False
    )
    assert json.loads(text) == value
    with pytest.raises(ValueError, match="identifier"):
        with_default_kwargs("", {"not a name": 1})
    with pytest.raises(TypeError):
        jinja_literal(object())


def test_spec_options_are_template_keywords():
    assert split_spec_options("Qwen/Qwen3-1.7B") == ("Qwen/Qwen3-1.7B", {})
    assert split_spec_options("/ckpt/model?enable_thinking=false&depth=2&tag=x") == (
        "/ckpt/model",
        {"enable_thinking": False, "depth": 2, "tag": "x"},
    )
    with pytest.raises(ValueError, match="name=value"):
        split_spec_options("m?enable_thinking")
