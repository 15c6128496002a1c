"""SFT warm-start data: oracle episodes rendered as (ids, loss_mask) training sequences.

The oracle (follows each task's `normal_path`) plays against the scripted user; every
passing episode's messages are rendered through the policy's chat template with
`ChatTemplateRenderer.conversation_ids`, so the loss falls only on what the model must
write in assistant turns: prose, tool-call blocks (rendered back from `tool_calls`) and
the end-of-turn token. System, user and tool turns carry mask 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agentwheel.core.task import BranchKind, Task
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import OraclePolicy
from agentwheel.envs.trajectory import Trajectory
from agentwheel.envs.user import ScriptedUser
from agentwheel.llm.template import ChatTemplateRenderer
from agentwheel.settings.runner import RunnerConfig
from agentwheel.train.batching import TrainSequence


@dataclass
class SFTData:
    """Training sequences and why some episodes gave none."""

    sequences: list[TrainSequence]
    task_ids: list[str]
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> episodes


def oracle_episodes(
    tasks: Sequence[Task],
    trials: int = 1,
    config: RunnerConfig | None = None,
    kind_repeats: Mapping[BranchKind, int] | None = None,
) -> list[Trajectory]:
    """The oracle's episodes against the scripted user: `trials` per task, times the
    task's branch kind's entry in `kind_repeats` (1 where absent)."""
    repeats = kind_repeats or {}
    specs = [
        EpisodeSpec(task, trial)
        for task in tasks
        for trial in range(trials * repeats.get(task.branch_kind, 1))
    ]
    return EpisodeRunner(OraclePolicy(), ScriptedUser(), config).run(specs)


def trajectory_sequence(
    trajectory: Trajectory, task: Task, renderer: ChatTemplateRenderer, max_len: int
) -> TrainSequence:
    """One episode as a training sequence, cut to `max_len` tokens."""
    ids, mask = renderer.conversation_ids(trajectory.messages, task.tools)
    return TrainSequence(ids=ids[:max_len], loss_mask=mask[:max_len])


def oracle_sft_data(
    tasks: Sequence[Task],
    renderer: ChatTemplateRenderer,
    max_seq_len: int,
    trials: int = 1,
    config: RunnerConfig | None = None,
    kind_repeats: Mapping[BranchKind, int] | None = None,
) -> SFTData:
    """Oracle episodes on `tasks` as SFT sequences (passing episodes only)."""
    by_id = {t.id: t for t in tasks}
    data = SFTData(sequences=[], task_ids=[])
    for trajectory in oracle_episodes(tasks, trials, config, kind_repeats):
        reason = None
        if not trajectory.passed:
            reason = "oracle_failed"
        elif not any(m.role == "assistant" for m in trajectory.messages):
            reason = "no_assistant_turn"
        if reason is None:
            sequence = trajectory_sequence(
                trajectory, by_id[trajectory.task_id], renderer, max_seq_len
            )
            if sequence.num_trained_tokens > 0:
                data.sequences.append(sequence)
                data.task_ids.append(trajectory.task_id)
                continue
            reason = "no_trained_tokens"
        data.rejected[reason] = data.rejected.get(reason, 0) + 1
    return data
