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
from agentwheel.llm.types import ChatModel

PROMPT = """You simulate the back-end of the tool `{name}` ({kind}): {description}
Parameters (JSON schema): {parameters}
Outputs this system already returned for other calls (stay consistent with them):
{known}
Reply with only the JSON output of the call below: a realistic record, or
{{"error": "not_found", "detail": "..."}} when such a record plausibly would not exist.
Call: {name}({arguments})"""


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
    """The first JSON value in the text (models often wrap it in prose or code fences)."""
    decoder = json.JSONDecoder()
    for start, char in enumerate(text):
        if char in "{[":
            try:
                return decoder.raw_decode(text[start:])[0]
            except json.JSONDecodeError:
                continue
    return tool_error("no_result", "tool simulator returned no JSON")
