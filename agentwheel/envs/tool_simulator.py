"""An LLM that answers off-script calls in the mock back-end.

It sees the tool's schema, the call's arguments, and the outputs the task already fixes
for other calls, so its invented answer stays consistent with known facts. The mock
back-end caches each answer by call, so a repeated call within an episode sees the same
facts (the paper's released simulator re-derived them from the transcript every time).
"""

from __future__ import annotations

import json
from typing import Any

from agentwheel.core.messages import ChatRequest, Message, SamplingParams
from agentwheel.core.task import Task, ToolSpec
from agentwheel.envs.tools import expected_outputs, tool_error
from agentwheel.llm.tool_calls import MAX_JSON_DEPTH, cap_reply, json_depth
from agentwheel.llm.types import ChatModel

PROMPT = """You simulate the back-end of the tool `{name}` ({kind}): {description}
Parameters (JSON schema): {parameters}
Outputs this system already returned for other calls (stay consistent with them):
{known}
Reply with only the JSON output of the call below: a realistic record, or
{{"error": "not_found", "detail": "..."}} when such a record plausibly would not exist.
Call: {name}({arguments})"""


MAX_JSON_STARTS = 16
"""Openings of `{` / `[` tried: each try scans to the end, so a reply full of brackets
would otherwise cost quadratic time."""


class LLMToolSimulator:
    def __init__(self, model: ChatModel, params: SamplingParams | None = None, max_known: int = 8):
        self.model = model
        self.params = params or SamplingParams(max_new_tokens=256, temperature=0.0)
        self.max_known = max_known

    def simulate(self, task: Task, tool: ToolSpec, arguments: dict[str, Any]) -> Any:
        known = list(expected_outputs(task).items())[: self.max_known]
        prompt = PROMPT.format(
            name=tool.name,
            kind=tool.kind,
            description=tool.description,
            parameters=json.dumps(tool.parameters),
            known="\n".join(f"- {key} -> {json.dumps(out)}" for key, out in known) or "(none)",
            arguments=json.dumps(arguments),
        )
        request = ChatRequest(messages=[Message(role="user", content=prompt)])
        completion = self.model.chat([request], self.params)[0]
        if completion.failed:
            return tool_error("no_result", f"tool simulator failed: {completion.error}")
        return parse_json_output(completion.text)


def parse_json_output(text: str) -> Any:
    """The first JSON value in the text (models often wrap it in prose or code fences).

    Never raises: the text is capped (`cap_reply`), at most `MAX_JSON_STARTS` openings are
    tried, one nested past `MAX_JSON_DEPTH` is skipped, and NaN / Infinity are not JSON."""
    text = cap_reply(text)
    decoder = json.JSONDecoder(parse_constant=_not_json)
    starts = [i for i, char in enumerate(text) if char in "{["][:MAX_JSON_STARTS]
    for start in starts:
        if json_depth(text[start:]) > MAX_JSON_DEPTH:
            continue
        try:
            return decoder.raw_decode(text, start)[0]
        except ValueError:  # a JSONDecodeError, a rejected constant, an over-long integer
            continue
    return tool_error("no_result", "tool simulator returned no JSON")


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
