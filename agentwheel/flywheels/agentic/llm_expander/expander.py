"""The public entry points: `LLMExpander`, the teacher as a `TreeExpander` (one workflow,
one tree), and `expand_with_llm`, the resumable run that takes workflows all the way to
gated tasks."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.messages import ChatRequest, Message
from agentwheel.core.rejection import Rejection
from agentwheel.core.run_layout import MANIFEST_FILE
from agentwheel.flywheels.agentic.llm_expander.config import LLMExpanderConfig
from agentwheel.flywheels.agentic.llm_expander.extract import (
    AnswerError,
    answer_text,
    parse_answer,
)
from agentwheel.flywheels.agentic.llm_expander.prompts import render_workflow, tree_prompt
from agentwheel.flywheels.agentic.llm_expander.records import (
    Manifest,
    llm_rejection,
)
from agentwheel.flywheels.agentic.llm_expander.scheduler import Run, drive, repair_turn
from agentwheel.flywheels.agentic.llm_expander.schemas import TreeAnswer
from agentwheel.flywheels.agentic.tree import BehaviorTree
from agentwheel.flywheels.agentic.workflow import Workflow
from agentwheel.flywheels.agentic.workflow_loader import load_workflows
from agentwheel.llm.openai_compat import ModelConfigError
from agentwheel.llm.types import ChatModel

log = logging.getLogger(__name__)


class LLMExpander:
    """A teacher model as a `TreeExpander` (expand.py): one tree request per workflow, sent
    back with its problems at most `max_repairs` times.

    The tree carries the tools the teacher designed (`BehaviorTree.tools`); its tasks come
    from the teacher too, through `expand_with_llm`, which also writes, resumes and runs
    many requests at once.
    """

    name = "llm"

    def __init__(self, teacher: ChatModel, config: LLMExpanderConfig | None = None):
        self.teacher = teacher
        self.config = config or LLMExpanderConfig()

    def expand(self, workflow: Workflow, seed: int) -> BehaviorTree:
        """The teacher's tree for `workflow`; raises AnswerError (a ValueError) when the
        answer stays unusable or the request fails."""
        max_branches = self.config.max_branches
        params = self.config.sampling_params().model_copy(update={"seed": seed})
        prompt = tree_prompt(workflow, render_workflow(workflow), max_branches)
        messages = [Message(role="user", content=prompt)]
        repairs = 0
        while True:
            (completion,) = self.teacher.chat([ChatRequest(messages=messages)], params)
            if completion.failed:
                raise AnswerError(f"the teacher request failed: {completion.error}")
            try:
                text = answer_text(completion)
                answer = parse_answer(TreeAnswer, text, {"max_branches": max_branches})
                return answer.to_behavior_tree(workflow, seed, self.name)
            except AnswerError as exc:
                if repairs == self.config.max_repairs:
                    raise
                repairs += 1
                messages = repair_turn(messages, completion.text, str(exc))


def _workflows_from(
    workflows: Iterable[Workflow] | str | Path | None,
) -> tuple[list[Workflow], list[Rejection]]:
    if workflows is None or isinstance(workflows, str | Path):
        loaded, failures = load_workflows(workflows)
        # One reason for every file that does not load; the loader's own is in the detail.
        return loaded, [
            llm_rejection("load", f.item, "invalid_workflow", f.detail or f.reason, field=f.field)
            for f in failures
        ]
    # Objects are taken as validated models: the loader's cross-field checks are about the
    # SQLite world the procedural expander builds, which a teacher's text prompt never needs.
    out: list[Workflow] = []
    rejected: list[Rejection] = []
    seen: set[str] = set()
    for workflow in workflows:
        if workflow.id in seen:
            rejected.append(
                llm_rejection(
                    "load", workflow.id, "invalid_workflow", "duplicate workflow id", field="id"
                )
            )
            continue
        seen.add(workflow.id)
        out.append(workflow)
    return out, rejected


def expand_with_llm(
    workflows: Iterable[Workflow] | str | Path | None,
    teacher: ChatModel,
    out_dir: str | Path,
    config: LLMExpanderConfig | None = None,
) -> Manifest:
    """Expand workflows (objects, a file or directory, or None = the bundled ones) into
    tasks with a teacher model, resuming whatever `out_dir` already holds.

    Writes `trees.jsonl`, `policies.jsonl`, `tasks.jsonl` (kept `Task`s, a loadable
    dataset), `rejections.jsonl` (core `Rejection`s: `item` is the workflow id, `context`
    the branch, attempts and last answer) and `manifest.json` under `out_dir`, and returns
    the manifest. A rerun skips what is finished (keyed by workflow and branch id) and
    retries failed requests; a killed run loses at most the requests in flight. Raises
    `ModelConfigError` when the teacher rejects its configuration; the manifest then says
    `stopped` and everything finished before is on disk.
    """
    config = config or LLMExpanderConfig()
    out = Path(out_dir)
    start = time.perf_counter()
    loaded, load_rejections = _workflows_from(workflows)
    run = Run(loaded, teacher, out, config, load_rejections)
    status: Literal["complete", "stopped"] = "complete"
    stop_reason = ""
    try:
        drive(run)
    except BaseException as exc:
        status = "stopped"
        if isinstance(exc, ModelConfigError):
            stop_reason = f"the teacher rejected its configuration: {exc}"
        else:
            stop_reason = f"{type(exc).__name__}: {exc}"
        log.error("LLM expansion stopped (%s); finished items are kept in %s", stop_reason, out)
        raise
    finally:
        run.close()
        manifest = run.manifest(status, stop_reason, time.perf_counter() - start)
        write_text_atomic(out / MANIFEST_FILE, manifest.model_dump_json(indent=2))
    log.info(
        "LLM expansion %s: %d tasks kept, %d requests in %.1fs",
        status,
        manifest.tasks_kept,
        manifest.requests,
        manifest.seconds,
    )
    return manifest
