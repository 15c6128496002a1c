"""What one episode leaves behind: messages, token ids with their loss mask, reward, counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from agentwheel.core.messages import Message
from agentwheel.core.task import Signal, Stance

Termination = Literal["user_ended", "turn_limit", "token_limit", "model_error", "user_error"]


class TokenTrace(BaseModel):
    """The episode as one token sequence. `loss_mask` is 1 exactly on tokens the agent
    generated; `logprobs` holds their sampling log-probabilities (0.0 elsewhere)."""

    ids: list[int] = Field(default_factory=list)
    loss_mask: list[int] = Field(default_factory=list)
    logprobs: list[float] = Field(default_factory=list)

    def add_context(self, ids: Sequence[int]) -> None:
        self.ids.extend(ids)
        self.loss_mask.extend([0] * len(ids))
        self.logprobs.extend([0.0] * len(ids))

    def add_generated(self, ids: Sequence[int], logprobs: Sequence[float] | None) -> None:
        if logprobs is not None and len(logprobs) != len(ids):
            raise ValueError(f"{len(ids)} generated ids but {len(logprobs)} logprobs")
        self.ids.extend(ids)
        self.loss_mask.extend([1] * len(ids))
        self.logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))

    def __len__(self) -> int:
        return len(self.ids)


class AnswerCheck(BaseModel):
    """The components of an industrial task's reward: the answer, and its evidence."""

    submitted: str | None = None
    correct: bool = False
    evidence_required: list[str] = Field(default_factory=list)
    evidence_missing: list[str] = Field(default_factory=list)

    @property
    def evidence_seen(self) -> bool:
        return not self.evidence_missing


class RewardBreakdown(BaseModel):
    passed: bool
    state_matches: bool
    hack_action_ran: bool
    signals_required: list[Signal] = Field(default_factory=list)
    signals_present: dict[str, bool] = Field(default_factory=dict)
    outputs_missing: list[str] = Field(default_factory=list)
    # Actions the back-end ran that the normal path does not make (call keys).
    actions_off_path: list[str] = Field(default_factory=list)
    # Facts the agent asked the user for after the user had given them (a failure).
    facts_asked_again: list[str] = Field(default_factory=list)
    # What the agent did, earned or not (agentwheel.envs.stance); None in traces judged
    # before the stance was recorded (`agentwheel rejudge` adds it).
    stance: Stance | None = None
    final_state: str = ""
    expected_state: str = ""
    answer: AnswerCheck | None = None  # industrial tasks (search, analysis) only

    @property
    def value(self) -> float:
        return 1.0 if self.passed else 0.0

    def failure_reasons(self) -> list[str]:
        """Why a failed episode failed, every condition it missed (empty when it passed):
        `wrong_state` / `wrong_answer`, `evidence_missing`, `hack_action`,
        `action_off_path`, `no_<signal>`, `output_missing`, `asked_again`."""
        if self.passed:
            return []
        if self.answer is not None:
            reasons = [] if self.answer.correct else ["wrong_answer"]
            reasons += ["evidence_missing"] if self.answer.evidence_missing else []
        else:
            reasons = [] if self.state_matches else ["wrong_state"]
        checks = {
            "hack_action": self.hack_action_ran,
            "action_off_path": bool(self.actions_off_path),
            **{f"no_{s}": not self.signals_present.get(s) for s in self.signals_required},
            "output_missing": bool(self.outputs_missing),
            "asked_again": bool(self.facts_asked_again),
        }
        return reasons + [name for name, failed in checks.items() if failed]


class EpisodeCounts(BaseModel):
    agent_turns: int = 0
    user_turns: int = 0
    tool_calls: int = 0
    tool_errors: dict[str, int] = Field(default_factory=dict)
    invalid_tool_calls: dict[str, int] = Field(default_factory=dict)
    generated_tokens: int = 0
    # Replies longer than agentwheel.llm.tool_calls.MAX_REPLY_CHARS, stored cut.
    replies_cut: int = 0


class EpisodeTimings(BaseModel):
    model_s: float = 0.0
    user_s: float = 0.0
    env_s: float = 0.0
    total_s: float = 0.0


class Trajectory(BaseModel):
    task_id: str
    trial: int
    domain: str
    branch_kind: str
    policy: str
    backend: str
    messages: list[Message]
    tokens: TokenTrace | None = None
    reward: RewardBreakdown
    termination: Termination
    error: str | None = None
    counts: EpisodeCounts = Field(default_factory=EpisodeCounts)
    timings: EpisodeTimings = Field(default_factory=EpisodeTimings)

    @property
    def passed(self) -> bool:
        return self.reward.passed
