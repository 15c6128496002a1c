"""The knobs of an LLM expansion run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentwheel.core.messages import SamplingParams


@dataclass(frozen=True)
class LLMExpanderConfig:
    """Knobs of an LLM expansion run."""

    max_repairs: int = 2
    """Follow-up turns with the validation errors before an item is rejected."""
    batch_size: int = 256
    """Most teacher requests in flight at once (and so most requests in one `teacher.chat`
    call). Above the teacher's concurrency keeps it busy; smaller loses less when a run is
    killed."""
    parallel_calls: int | None = None
    """Most `teacher.chat` calls in flight at once, each from its own worker thread. None:
    twice the teacher's `concurrency` (64 when it has none) for a remote teacher (one
    without a local `renderer`), whose `chat` must then be thread-safe; 1 for a local
    model, which then gets one batch at a time."""
    max_branches: int = 12
    """Most leaves a tree may have (each leaf costs one request)."""
    max_new_tokens: int = 4096
    temperature: float = 0.7
    seed: int | None = 0
    round: int = 0
    """Flywheel round, written into each task's lineage and id."""
    policy_scope: Literal["tree", "branch"] = "tree"
    """`tree`: every task of a tree states the whole policy; `branch`: only the rules for
    the decisions its branch passes."""
    gate: bool = True
    """Run the validation gate on produced tasks (oracle passes, hack fails, traceable)."""
    retry_failed_requests: bool = True
    """A rerun retries items whose teacher request failed (timeouts, 5xx after retries)."""

    def __post_init__(self) -> None:
        if self.max_repairs < 0 or self.batch_size < 1 or self.max_branches < 1:
            raise ValueError("need max_repairs >= 0, batch_size >= 1 and max_branches >= 1")
        if self.parallel_calls is not None and self.parallel_calls < 1:
            raise ValueError(f"parallel_calls must be at least 1, got {self.parallel_calls}")

    def sampling_params(self) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, seed=self.seed
        )
