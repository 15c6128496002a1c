"""Episodes and tasks as the page shows them."""

from __future__ import annotations

from agentwheel.core.messages import Message
from agentwheel.core.task import Task
from agentwheel.envs.trajectory import Trajectory
from agentwheel.view.page_data import EpisodeView, TaskView, Turn
from agentwheel.view.state_diff import StateDiffs


class PromptTable:
    """Each distinct system prompt once, by index."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._index: dict[str, int] = {}

    def index(self, text: str) -> int:
        if text not in self._index:
            self._index[text] = len(self.texts)
            self.texts.append(text)
        return self._index[text]


def workflow_of(task: Task | None, domain: str) -> str:
    """The workflow a task was made from; its domain when the task is not at hand."""
    if task is not None and task.lineage.source_workflow:
        return task.lineage.source_workflow
    return domain


def to_turn(message: Message, prompts: PromptTable) -> Turn:
    if message.role == "system":
        return Turn(role="system", prompt=prompts.index(message.content))
    return Turn(
        role=message.role,
        text=message.content,
        calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls],
        call_id=message.tool_call_id,
        tool=message.name,
    )


def hack_background_turn(task: Task | None, messages: list[Message]) -> int | None:
    """The index of the user turn that revealed the hack background (the simulated user
    reveals it only after a refusal), or None when it never entered."""
    if task is None:
        return None
    background = task.user.hack_success_user_background.strip()
    if not background:
        return None
    return next(
        (i for i, m in enumerate(messages) if m.role == "user" and background in m.content),
        None,
    )


def episode_view(
    trajectory: Trajectory,
    task: Task | None,
    group: int,
    prompts: PromptTable,
    diffs: StateDiffs,
) -> EpisodeView:
    """One trajectory for the page; with its task at hand, a failed episode whose state
    did not match also gets the differing actions and rows."""
    reward = trajectory.reward
    diff = None
    if task is not None and not reward.state_matches:
        diff = diffs.of(task, trajectory)
    return EpisodeView(
        group=group,
        task=trajectory.task_id,
        trial=trajectory.trial,
        domain=trajectory.domain,
        workflow=workflow_of(task, trajectory.domain),
        kind=trajectory.branch_kind,
        policy=trajectory.policy,
        backend=trajectory.backend,
        passed=trajectory.passed,
        termination=trajectory.termination,
        error=trajectory.error,
        reward=reward.model_dump(),
        counts=trajectory.counts.model_dump(),
        timings={k: round(v, 4) for k, v in trajectory.timings.model_dump().items()},
        turns=[to_turn(m, prompts) for m in trajectory.messages],
        hack_turn=hack_background_turn(task, trajectory.messages),
        diff=diff,
    )


def task_view(task: Task) -> TaskView:
    return TaskView(
        id=task.id,
        domain=task.domain,
        kind=task.branch_kind,
        workflow=workflow_of(task, task.domain),
        instruction=task.instruction,
        tools=[t.model_dump() for t in task.tools],
        user=task.user.model_dump(),
        normal_path=[s.model_dump() for s in task.normal_path],
        hack_path=[s.model_dump() for s in task.hack_path],
        evaluation=task.evaluation.model_dump(),
        lineage=task.lineage.model_dump(),
        backend="sqlite" if task.sqlite is not None else "mock",
    )


def task_as_episode(task: Task, group: int) -> EpisodeView:
    """A task with no episode yet (a task directory): listed like one, without turns."""
    return EpisodeView(
        group=group,
        task=task.id,
        trial=0,
        domain=task.domain,
        workflow=workflow_of(task, task.domain),
        kind=task.branch_kind,
        policy="",
        backend="sqlite" if task.sqlite is not None else "mock",
        passed=None,
        termination="not run",
    )
