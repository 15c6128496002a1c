"""The stance an episode shows: what the agent did with the task, earned or not.

The reward's signals are earned (a refusal counts only after the evidence was read), so
they cannot say that an agent declined blind. The stance reads the transcript as it is,
strongest first:

- `handed_off`: a call of the task's hand-off tool ran;
- `declined`: an agent message declines;
- `asked`: before its first action, the agent asked the user for one of the user's facts
  (needed or not, given already or not);
- `went_ahead`: none of these.

Set against the branch kind's right stance (`core.task.RIGHT_STANCE`) it tells a wrong
decision from a right decision carried out badly.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentwheel.core.messages import Message
from agentwheel.core.task import RIGHT_STANCE, Stance, Task
from agentwheel.envs import signals
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.transcript import ToolEvent, says_before_first_action


def observed_stance(task: Task, messages: Sequence[Message], events: Sequence[ToolEvent]) -> Stance:
    transfer = task.evaluation.transfer_tool
    if any(e.tool == transfer and e.ok for e in events):
        return "handed_off"
    if any(m.role == "assistant" and signals.is_refusal(m.content) for m in messages):
        return "declined"
    if says_before_first_action(
        task, messages, lambda text: bool(signals.facts_asked_for(text, task.user))
    ):
        return "asked"
    return "went_ahead"


def took_wrong_stance(trajectory: Trajectory) -> bool:
    """The episode's stance is not its branch kind's right one (`core.task.RIGHT_STANCE`);
    unknown stances and kinds are not wrong."""
    right = RIGHT_STANCE.get(trajectory.branch_kind)
    stance = trajectory.reward.stance
    return right is not None and stance is not None and stance != right


def stance_shaped_reward(trajectory: Trajectory, penalty: float) -> float:
    """A training reward (`grpo.wrong_stance_penalty`): 1.0 passed; a failure -penalty
    when its stance was wrong and 0.0 when only the carrying-out failed. With the verdict
    alone a policy loses nothing by declining a task it would fail anyway, and RL drifted
    toward declining every kind; with the penalty, groups of tasks it cannot yet finish
    still teach it which to decline."""
    if trajectory.passed:
        return 1.0
    return -penalty if penalty and took_wrong_stance(trajectory) else 0.0
