"""The pipelined, concurrent run: queue each item as soon as the answer it depends on is
parsed, keep the teacher's calls in flight from worker threads, and parse, gate and write
the answers that come back meanwhile.

A workflow's policy request goes out right after its tree is parsed, its branches right
after its policy, so no stage waits for a whole wave of another. For a remote teacher (no
local renderer, e.g. `OpenAIChatModel`) several small `teacher.chat` calls are in flight
at once and the teacher's own concurrency bound shares them out; a local teacher gets one
batch of up to `batch_size` at a time. A `ModelConfigError` (bad key, unknown model) stops
the run: no new requests go out, the answers of those in flight are still kept.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import queue
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from agentwheel.core.messages import ChatRequest, Completion, Message
from agentwheel.core.rejection import Rejection
from agentwheel.core.task import Task
from agentwheel.flywheels.agentic.branches import Branch, enumerate_branches
from agentwheel.flywheels.agentic.llm_expander.build import build_task, rules_for_branch
from agentwheel.flywheels.agentic.llm_expander.checks import policy_problems
from agentwheel.flywheels.agentic.llm_expander.config import LLMExpanderConfig
from agentwheel.flywheels.agentic.llm_expander.extract import (
    AnswerError,
    answer_text,
    parse_answer,
)
from agentwheel.flywheels.agentic.llm_expander.prompts import (
    case_prompt,
    fix_prompt,
    policy_prompt,
    render_workflow,
    tree_prompt,
)
from agentwheel.flywheels.agentic.llm_expander.records import (
    REQUEST_FAILED,
    STAGES,
    Manifest,
    PolicyRecord,
    Stage,
    StageCounts,
    TreeRecord,
    is_final,
    llm_rejection,
    rejection_key,
)
from agentwheel.flywheels.agentic.llm_expander.schemas import CaseAnswer, PolicyAnswer, TreeAnswer
from agentwheel.flywheels.agentic.llm_expander.state import RunState
from agentwheel.flywheels.agentic.tree import BehaviorTree
from agentwheel.flywheels.agentic.validate import validate_tasks
from agentwheel.flywheels.agentic.workflow import Workflow
from agentwheel.llm.openai_compat import ModelConfigError
from agentwheel.llm.types import ChatModel

SYNC_INTERVAL_S = 1.0


@dataclass
class _Item:
    """One unit of teacher work and its conversation so far."""

    stage: Stage
    workflow: Workflow
    branch: Branch | None = None
    messages: list[Message] = field(default_factory=list)
    attempts: int = 0

    @property
    def branch_id(self) -> str:
        return self.branch.id if self.branch is not None else ""


def repair_turn(messages: Sequence[Message], answer: str, problems: str) -> list[Message]:
    """The conversation with an unusable answer and its problems sent back."""
    return [
        *messages,
        Message(role="assistant", content=answer),
        Message(role="user", content=fix_prompt(problems)),
    ]


class Run:
    """The items of one run: what is queued, what is finished (`state`), and the counts."""

    def __init__(
        self,
        workflows: Sequence[Workflow],
        teacher: ChatModel,
        out_dir: Path,
        config: LLMExpanderConfig,
        load_rejections: Sequence[Rejection],
    ):
        self.workflows = {w.id: w for w in workflows}
        self.teacher = teacher
        self.config = config
        self.params = config.sampling_params()
        self.counts = {stage: StageCounts() for stage in (*STAGES, "gate")}
        self.state = RunState(out_dir, self.workflows, config.seed or 0)
        self.queues: dict[Stage, deque[_Item]] = {stage: deque() for stage in STAGES}
        self.waves = 0
        self._rendered: dict[str, str] = {}
        self._synced = time.monotonic()
        for rejection in load_rejections:
            if self.state.rejections.get(rejection_key(rejection)) != rejection:
                self.state.reject(rejection)

    def _finished(self, stage: Stage, workflow_id: str, branch_id: str = "") -> bool:
        retry = self.config.retry_failed_requests
        return self.state.finished(stage, workflow_id, branch_id, retry)

    # -- scheduling ---------------------------------------------------------------------

    def schedule(self, workflow: Workflow) -> None:
        """Queue the next unfinished stage of a workflow, or count it as resumed."""
        if not self._finished("tree", workflow.id):
            self._enqueue(_Item("tree", workflow), self._tree_prompt(workflow))
            return
        self.counts["tree"].resumed += 1
        tree = self.state.trees.get(workflow.id)
        if tree is None:
            return
        if not self._finished("policy", workflow.id):
            self._enqueue(_Item("policy", workflow), self._policy_prompt(workflow, tree))
            return
        self.counts["policy"].resumed += 1
        policy = self.state.policies.get(workflow.id)
        if policy is None:
            return
        self._schedule_branches(workflow, tree, policy)

    def _schedule_branches(
        self, workflow: Workflow, tree: BehaviorTree, policy: PolicyAnswer
    ) -> None:
        for branch in enumerate_branches(tree):
            if self._finished("task", workflow.id, branch.id):
                self.counts["task"].resumed += 1
                continue
            rules = rules_for_branch(policy, tree, branch, self.config.policy_scope)
            prompt = case_prompt(self._workflow_text(workflow), tree, rules, branch)
            self._enqueue(_Item("task", workflow, branch), prompt)

    def _enqueue(self, item: _Item, prompt: str) -> None:
        item.messages = [Message(role="user", content=prompt)]
        self.queues[item.stage].append(item)

    def queued(self) -> int:
        return sum(len(pending) for pending in self.queues.values())

    def next_batch(self, limit: int) -> list[_Item]:
        """Up to `limit` queued items for one teacher call."""
        # Later stages first: they finish items (and free memory) soonest.
        batch: list[_Item] = []
        for stage in reversed(STAGES):
            pending = self.queues[stage]
            while pending and len(batch) < limit:
                batch.append(pending.popleft())
        return batch

    def _workflow_text(self, workflow: Workflow) -> str:
        # Every prompt of a workflow repeats it; render it once.
        text = self._rendered.get(workflow.id)
        if text is None:
            text = self._rendered[workflow.id] = render_workflow(workflow)
        return text

    def _tree_prompt(self, workflow: Workflow) -> str:
        return tree_prompt(workflow, self._workflow_text(workflow), self.config.max_branches)

    def _policy_prompt(self, workflow: Workflow, tree: BehaviorTree) -> str:
        return policy_prompt(self._workflow_text(workflow), tree)

    # -- answers ------------------------------------------------------------------------

    def handle(self, items: Sequence[_Item], completions: Sequence[Completion]) -> None:
        """Parse, check and write one teacher call's answers; gate the tasks they produced,
        and queue the follow-up items."""
        candidates: list[Task] = []
        for item, completion in zip(items, completions, strict=True):
            self.counts[item.stage].requests += 1
            if completion.failed:
                self.state.reject(
                    llm_rejection(
                        item.stage,
                        item.workflow.id,
                        REQUEST_FAILED,
                        completion.error or "the teacher request failed",
                        branch=item.branch_id,
                        attempts=item.attempts + 1,
                    )
                )
                continue
            try:
                task = self._accept(item, completion)
            except AnswerError as exc:
                self._retry_or_reject(item, completion.text, str(exc))
                continue
            if task is not None:
                candidates.append(task)
        if candidates:
            self._gate(candidates)
        # Lines are flushed as written (a killed run keeps them); syncing to the disk is for
        # power loss and costs milliseconds, so it happens at most once a second.
        now = time.monotonic()
        if now - self._synced >= SYNC_INTERVAL_S:
            self._synced = now
            self.state.sync()

    def _accept(self, item: _Item, completion: Completion) -> Task | None:
        text = answer_text(completion)
        workflow = item.workflow
        if item.stage == "tree":
            answer = parse_answer(TreeAnswer, text, {"max_branches": self.config.max_branches})
            tree = self.state.add_tree(
                TreeRecord(**self._provenance(item), workflow_id=workflow.id, tree=answer)
            )
            self.counts["tree"].done += 1
            self._enqueue(_Item("policy", workflow), self._policy_prompt(workflow, tree))
            return None
        tree = self.state.trees[workflow.id]
        if item.stage == "policy":
            policy = parse_answer(PolicyAnswer, text)
            problems = policy_problems(policy, tree)
            if problems:
                raise AnswerError("\n".join(f"- {p}" for p in problems))
            self.state.add_policy(
                PolicyRecord(**self._provenance(item), workflow_id=workflow.id, policy=policy)
            )
            self.counts["policy"].done += 1
            self._schedule_branches(workflow, tree, policy)
            return None
        assert item.branch is not None
        return build_task(
            workflow,
            tree,
            self.state.policies[workflow.id],
            item.branch,
            parse_answer(CaseAnswer, text),
            self.config.round,
            self.config.policy_scope,
        )

    def _provenance(self, item: _Item) -> dict[str, int | str]:
        return {
            "round": self.config.round,
            "teacher": self.teacher.name,
            "attempts": item.attempts + 1,
        }

    def _retry_or_reject(self, item: _Item, answer: str, problems: str) -> None:
        if item.attempts < self.config.max_repairs:
            follow_up = _Item(
                item.stage,
                item.workflow,
                item.branch,
                repair_turn(item.messages, answer, problems),
                item.attempts + 1,
            )
            self.counts[item.stage].repairs += 1
            self.queues[item.stage].append(follow_up)
            return
        self.state.reject(
            llm_rejection(
                item.stage,
                item.workflow.id,
                "invalid_answer",
                problems,
                branch=item.branch_id,
                attempts=item.attempts + 1,
                answer=answer,
            )
        )

    def _gate(self, candidates: list[Task]) -> None:
        if not self.config.gate:
            kept, rejected = candidates, []
        else:
            report = validate_tasks(candidates, backend="mock")
            kept, rejected = report.kept, report.rejected
        by_id = {t.id: t for t in candidates}
        for task in kept:
            self.state.keep_task(task)  # a branch already written is never written twice
        for problem in rejected:
            task = by_id[problem.item]
            self.state.reject(
                llm_rejection(
                    "gate",
                    task.lineage.source_workflow,
                    problem.reason,
                    problem.detail,
                    branch=task.lineage.branch,
                    task=task.model_dump(mode="json"),
                )
            )

    # -- manifest -----------------------------------------------------------------------

    def manifest(
        self, status: Literal["complete", "stopped"], stop_reason: str, seconds: float
    ) -> Manifest:
        state = self.state
        counts = {stage: c.model_copy() for stage, c in self.counts.items()}
        counts["tree"].done = len(state.trees)
        counts["policy"].done = len(state.policies)
        live = state.live_rejections()
        for stage in STAGES:
            mine = [r for r in live if r.stage == stage]
            counts[stage].rejected = sum(is_final(r) for r in mine)
            counts[stage].failed = sum(not is_final(r) for r in mine)
        counts["gate"].done = len(state.gate_kept)
        counts["gate"].rejected = sum(r.stage == "gate" for r in live)
        counts["task"].done = len(state.done_tasks)
        by_reason = Counter(f"{r.stage}/{r.reason}" for r in live)
        # OpenAIChatModel keeps request/retry/failure counts; other back-ends may not.
        stats = getattr(self.teacher, "stats", None)
        as_dict = getattr(stats, "as_dict", None)
        return Manifest(
            teacher=self.teacher.name,
            round=self.config.round,
            status=status,
            stop_reason=stop_reason,
            workflows=len(self.workflows),
            stages=counts,
            tasks_kept=len(state.gate_kept),
            rejections_by_reason=dict(sorted(by_reason.items())),
            requests=sum(c.requests for c in self.counts.values()),
            waves=self.waves,
            seconds=round(seconds, 3),
            teacher_stats=as_dict() if callable(as_dict) else None,
            config=dataclasses.asdict(self.config),
        )

    def close(self) -> None:
        self.state.close()


# ---- the concurrent loop -------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """One `teacher.chat` call in flight and the items it answers."""

    items: list[_Item]
    future: concurrent.futures.Future[list[Completion]]


def _answered(answers: queue.SimpleQueue[_Call], call: _Call, _: object) -> None:
    answers.put(call)


def parallel_calls(teacher: ChatModel, config: LLMExpanderConfig) -> int:
    """How many `teacher.chat` calls may be in flight (see `LLMExpanderConfig.parallel_calls`)."""
    if config.parallel_calls is not None:
        return config.parallel_calls
    if teacher.renderer is not None:
        return 1  # a local model: one batch at a time
    concurrency = getattr(teacher, "concurrency", None)
    if isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency > 0:
        return 2 * concurrency
    return 64


def drive(run: Run) -> None:
    """Ask the teacher for every queued item and every follow-up until none is left.

    Raises the teacher's `ModelConfigError` once the calls in flight have come back (their
    answers are handled and written)."""
    config = run.config
    parallel = parallel_calls(run.teacher, config)
    executor = concurrent.futures.ThreadPoolExecutor(parallel, thread_name_prefix="llm-expander")
    answers: queue.SimpleQueue[_Call] = queue.SimpleQueue()
    in_flight: dict[int, int] = {}  # id(call) -> requests in it
    stop: ModelConfigError | None = None

    def submit_queued() -> None:
        # Split what is queued over the free calls: a local teacher (one call) gets it all
        # as one batch, a remote one gets small calls whose answers come back one by one.
        while stop is None and len(in_flight) < parallel:
            room = config.batch_size - sum(in_flight.values())
            queued = run.queued()
            if room < 1 or queued == 0:
                return
            size = min(room, -(-queued // (parallel - len(in_flight))))
            batch = run.next_batch(size)
            requests = [ChatRequest(messages=item.messages) for item in batch]
            call = _Call(batch, executor.submit(run.teacher.chat, requests, run.params))
            in_flight[id(call)] = len(batch)
            call.future.add_done_callback(functools.partial(_answered, answers, call))
            run.waves += 1

    try:
        for workflow in run.workflows.values():
            run.schedule(workflow)
        submit_queued()
        while in_flight:
            call = answers.get()
            del in_flight[id(call)]
            try:
                completions = call.future.result()
            except ModelConfigError as exc:
                # Every other request would fail the same way: send no more, but keep the
                # answers of those in flight.
                stop = stop or exc
                continue
            # Queued items go out before this answer is parsed, its follow-ups right after.
            submit_queued()
            run.handle(call.items, completions)
            submit_queued()
        if stop is not None:
            raise stop
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
