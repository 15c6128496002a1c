"""Chat-template rendering for token back-ends: messages to token ids, one turn at a time.

`ChatTemplateRenderer` implements the `Renderer` protocol for any Hugging Face tokenizer
and Jinja chat template. It never re-tokenizes what the policy generated: the opening
prompt is rendered once, generated ids are kept as sampled, and every later environment
turn is rendered as a *delta* (the template's text for `[system, *new]` minus its text for
`[system]`) and tokenized on its own. For ChatML templates the turn boundaries are special
tokens, so the concatenation equals, id for id, what the template renders for the whole
conversation when the generated text is the assistant content.

Templates: a tokenizer whose own template knows about tools (it mentions `tools`, as
Qwen2.5 / Qwen3 templates do) keeps it; any other gets `templates/chatml_tools.jinja`,
ChatML with Hermes-style tool calls and no injected default system prompt.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import jinja2

from agentwheel.core.messages import FinishReason, Message
from agentwheel.core.task import ToolSpec

TOOL_TEMPLATE_FILE = "chatml_tools.jinja"
# Placeholder turns for delta rendering; what they say never reaches the output.
_SYSTEM = Message(role="system", content="S")
_USER = Message(role="user", content="U")
_ASSISTANT = Message(role="assistant", content="A")
_MARKER = "\u2063agentwheel-assistant-content\u2063"
# Histories tried, in order, as the common prefix of a delta render: some templates reject
# a tool turn with no user turn before it, others reject two user turns in a row.
_DELTA_BASES: tuple[tuple[Message, ...], ...] = (
    (_SYSTEM,),
    (_SYSTEM, _USER),
    (_SYSTEM, _USER, _ASSISTANT),
)


class TemplateRenderError(ValueError):
    """The chat template cannot be rendered one turn at a time (its text for a longer
    conversation does not extend its text for a shorter one)."""


@cache
def tool_chat_template() -> str:
    """agentwheel's ChatML template with Hermes-style tool calls."""
    return (resources.files("agentwheel.llm") / "templates" / TOOL_TEMPLATE_FILE).read_text(
        encoding="utf-8"
    )


def template_supports_tools(template: str | None) -> bool:
    """Whether a chat template renders a `tools` list (a heuristic: it mentions `tools`)."""
    return bool(template) and "tools" in str(template)


def tokenizer_template(tokenizer: Any) -> str | None:
    """The tokenizer's own chat template; of several named ones, the tool-use one."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, Mapping):
        return template.get("tool_use") or template.get("default")
    return template


def choose_template(tokenizer: Any) -> str:
    """The tokenizer's template when it supports tools, agentwheel's tool template otherwise."""
    own = tokenizer_template(tokenizer)
    return own if own is not None and template_supports_tools(own) else tool_chat_template()


def jinja_literal(value: Any) -> str:
    """`value` (None, a bool, number, string, or a list or dict of them) as a Jinja literal."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        # JSON number and string syntax is valid Jinja syntax.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jinja_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{jinja_literal(str(k))}: {jinja_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"a chat-template keyword cannot be {type(value).__name__}: {value!r}")


def with_default_kwargs(template: str, template_kwargs: Mapping[str, Any]) -> str:
    """`template` with `template_kwargs` as the defaults of its variables: rendered without
    them it renders as if they were passed; a caller that passes one still wins. This is
    how a saved tokenizer carries e.g. `enable_thinking=False` (Jinja's top-level `set`
    inside an `if` is visible to the rest of the template)."""
    for name in template_kwargs:
        if not name.isidentifier():
            raise ValueError(f"a chat-template keyword must be an identifier, got {name!r}")
    defaults = "".join(
        f"{{%- if {name} is not defined %}}{{%- set {name} = {jinja_literal(value)} %}}"
        "{%- endif %}\n"
        for name, value in template_kwargs.items()
    )
    return defaults + template


def standalone_tokenizer(tokenizer: Any, template: str) -> Any:
    """A copy of `tokenizer` whose own chat template is `template`, so that the directory it
    is saved to renders, with plain `apply_chat_template`, what `template` renders. The
    original is not touched (tokenizers are shared between models)."""
    own = copy.deepcopy(tokenizer)
    own.chat_template = template
    return own


class ChatTemplateRenderer:
    """Renders conversations for a Hugging Face tokenizer, token-in, token-out.

    `template` defaults to `choose_template(tokenizer)`; `template_kwargs` are passed to
    the template (e.g. `{"enable_thinking": False}` for Qwen3).
    """

    def __init__(
        self,
        tokenizer: Any,
        template: str | None = None,
        template_kwargs: Mapping[str, Any] | None = None,
    ):
        self.tokenizer = tokenizer
        self.template = template if template is not None else choose_template(tokenizer)
        self.template_kwargs = dict(template_kwargs or {})
        self._base_texts: dict[int, str] = {}
        self.close_text = self._close_text()
        close_ids = self.encode(self.close_text)
        special = set(tokenizer.all_special_ids)
        if close_ids and close_ids[0] in special:
            self.end_of_turn_id: int = close_ids[0]
            self.separator_ids: list[int] = close_ids[1:]
        elif tokenizer.eos_token_id is not None:
            self.end_of_turn_id = int(tokenizer.eos_token_id)
            self.separator_ids = []
        else:
            raise TemplateRenderError(
                f"cannot tell the end-of-turn token: the template closes a turn with "
                f"{self.close_text!r} and the tokenizer has no eos token"
            )

    def standalone_template(self) -> str:
        """The template this renderer renders with, its keyword arguments baked in as
        defaults: what a checkpoint's tokenizer must carry to prompt as training did."""
        return with_default_kwargs(self.template, self.template_kwargs)

    # Text -------------------------------------------------------------------------------

    def render_text(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        add_generation_prompt: bool = False,
    ) -> str:
        """The template's text for a conversation."""
        return self.render_openai(
            [m.openai_dict() for m in messages],
            [t.openai_schema() for t in tools],
            add_generation_prompt=add_generation_prompt,
        )

    def render_openai(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] = (),
        add_generation_prompt: bool = False,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> str:
        """The template's text for a conversation in the OpenAI chat format (plain dicts, as
        an HTTP request carries them); `template_kwargs` add to and override the renderer's."""
        text = self.tokenizer.apply_chat_template(
            list(messages),
            tools=list(tools) or None,
            chat_template=self.template,
            add_generation_prompt=add_generation_prompt,
            tokenize=False,
            **{**self.template_kwargs, **(template_kwargs or {})},
        )
        assert isinstance(text, str)
        return text

    def assistant_text(self, message: Message) -> str:
        """What the model writes for an assistant message (its content and tool-call blocks),
        without the end-of-turn token: the text whose ids SFT trains on."""
        opening = self.render_text([_SYSTEM, _USER], add_generation_prompt=True)
        full = self.render_text([_SYSTEM, _USER, message])
        if not full.startswith(opening) or not full.endswith(self.close_text):
            raise TemplateRenderError(
                "the template does not render an assistant turn as generation prompt + "
                f"content + {self.close_text!r}"
            )
        return full[len(opening) : len(full) - len(self.close_text)]

    def _close_text(self) -> str:
        text = self.render_text([_SYSTEM, _USER, Message(role="assistant", content=_MARKER)])
        if _MARKER not in text:
            raise TemplateRenderError("the template drops assistant content")
        return text[text.rindex(_MARKER) + len(_MARKER) :]

    # Ids --------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of template text; the template writes its own special tokens."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def initial_ids(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> list[int]:
        return self.encode(self.render_text(messages, tools, add_generation_prompt=True))

    def close_turn_ids(
        self, completion_ids: Sequence[int], finish_reason: FinishReason
    ) -> list[int]:
        # Generation that stopped on anything but the end-of-turn token (the length limit,
        # or another stop token such as <|endoftext|>) gets the end-of-turn token appended,
        # so every turn in the trace is closed the way the template closes it.
        if completion_ids and completion_ids[-1] == self.end_of_turn_id:
            return list(self.separator_ids)
        return [self.end_of_turn_id, *self.separator_ids]

    def continuation_ids(self, messages: Sequence[Message]) -> list[int]:
        return self.encode(self._delta_text(messages))

    def _delta_text(self, messages: Sequence[Message]) -> str:
        problems = []
        for index, base in enumerate(_DELTA_BASES):
            try:
                base_text = self._base_text(index)
                full = self.render_text([*base, *messages], add_generation_prompt=True)
            except jinja2.TemplateError as exc:
                problems.append(str(exc))
                continue
            if full.startswith(base_text):
                return full[len(base_text) :]
            problems.append("the longer render does not extend the shorter one")
        raise TemplateRenderError(
            f"cannot render {[m.role for m in messages]} as a continuation: {problems}"
        )

    def _base_text(self, index: int) -> str:
        if index not in self._base_texts:
            self._base_texts[index] = self.render_text(_DELTA_BASES[index])
        return self._base_texts[index]

    def conversation_ids(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> tuple[list[int], list[int]]:
        """A whole conversation as `(ids, loss_mask)`, laid out exactly as a rollout trace.

        The mask is 1 on what the model generates in each assistant turn: its content,
        tool-call blocks and end-of-turn token (the model must learn to stop); everything
        the template adds around them, and every other turn, is 0. Messages after the last
        assistant turn carry no loss and are left out.
        """
        turns = [i for i, m in enumerate(messages) if m.role == "assistant"]
        if not turns or turns[0] == 0:
            raise ValueError(
                "a conversation to train on needs an opening turn and an assistant turn"
            )
        ids = self.initial_ids(messages[: turns[0]], tools)
        mask = [0] * len(ids)
        for position, turn in enumerate(turns):
            generated = [*self.encode(self.assistant_text(messages[turn])), self.end_of_turn_id]
            ids += generated
            mask += [1] * len(generated)
            context = list(self.separator_ids)
            if position + 1 < len(turns):
                context += self.continuation_ids(messages[turn + 1 : turns[position + 1]])
            ids += context
            mask += [0] * len(context)
        return ids, mask
