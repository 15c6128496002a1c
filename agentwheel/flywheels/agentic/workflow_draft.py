"""A workflow YAML drafted by a teacher model from a plain-language procedure.

The teacher gets the format's rules, a bundled workflow as an example and the procedure;
each answer goes through the strict loader (`parse_workflow`), and its problems go back
to the teacher in the next turn, as the LLM expander does with its answers. The file is
written only when an answer loads; every rejected answer is counted with its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.messages import ChatRequest, Message, SamplingParams
from agentwheel.core.yaml_text import load_yaml
from agentwheel.flywheels.agentic.llm_expander.prompts import load_prompt
from agentwheel.flywheels.agentic.workflow import Workflow
from agentwheel.flywheels.agentic.workflow_loader import (
    BUNDLED_WORKFLOWS,
    WorkflowError,
    parse_workflow,
)
from agentwheel.llm.types import ChatModel

EXAMPLE_WORKFLOW = "retail_order_cancel.yaml"
_YAML_FENCE = re.compile(r"```[ \t]*(?:ya?ml|YA?ML)?[ \t]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class DraftConfig:
    """Knobs of one draft."""

    attempts: int = 4
    """Answers the teacher may give; each after the first sees the last one's problems."""
    max_new_tokens: int = 6000
    temperature: float = 0.2
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")

    def sampling_params(self) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=self.seed
        )


@dataclass
class DraftResult:
    """The workflow that loaded (None when none did), the answers asked for, and why each
    rejected answer was rejected, in order."""

    workflow: Workflow | None
    attempts: int
    failures: list[str] = field(default_factory=list)


def draft_prompt(procedure: str) -> str:
    example = (BUNDLED_WORKFLOWS / EXAMPLE_WORKFLOW).read_text(encoding="utf-8")
    return load_prompt("draft_workflow").substitute(
        example=example.strip(), procedure=procedure.strip()
    )


def answer_yaml(text: str) -> str:
    """The YAML in an answer: the last fenced block, or the whole text when unfenced."""
    blocks = _YAML_FENCE.findall(text)
    return (blocks[-1] if blocks else text).strip() + "\n"


def check_answer(text: str, file: str) -> Workflow | str:
    """The loaded workflow, or the problems as the teacher should read them."""
    source = answer_yaml(text)
    try:
        data = load_yaml(source)
    except yaml.YAMLError as exc:
        return f"- the YAML does not parse: {' '.join(str(exc).split())}"
    try:
        return parse_workflow(data, file)
    except WorkflowError as exc:
        return "\n".join(f"- {f}: {m}" if f else f"- {m}" for f, m in exc.problems)


def draft_workflow(
    procedure: str, teacher: ChatModel, out: Path, config: DraftConfig | None = None
) -> DraftResult:
    """Ask `teacher` for a workflow YAML for `procedure` until one loads (at most
    `config.attempts` answers) and write that answer's YAML to `out`. Nothing is written
    when no answer loads. Raises what the teacher raises for a bad configuration
    (`ModelConfigError`); a failed request counts as a rejected answer."""
    config = config or DraftConfig()
    params = config.sampling_params()
    messages = [Message(role="user", content=draft_prompt(procedure))]
    result = DraftResult(workflow=None, attempts=0)
    for _ in range(config.attempts):
        result.attempts += 1
        (completion,) = teacher.chat([ChatRequest(messages=messages)], params)
        if completion.failed:
            result.failures.append(f"the request failed: {completion.error}")
            continue
        if completion.finish_reason == "length":
            checked: Workflow | str = (
                "- the answer was cut off at the length limit; answer with the complete "
                "YAML, more briefly"
            )
        else:
            checked = check_answer(completion.text, str(out))
        if isinstance(checked, Workflow):
            out.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out, answer_yaml(completion.text))
            result.workflow = checked
            return result
        result.failures.append(" ".join(checked.split()))
        messages = [
            *messages,
            Message(role="assistant", content=completion.text),
            Message(role="user", content=load_prompt("fix_workflow").substitute(problems=checked)),
        ]
    return result
