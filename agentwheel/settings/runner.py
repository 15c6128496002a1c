"""Limits of a run of episodes: `RunnerConfig` (what the episode runner,
agentwheel/envs/runner.py, takes) and `RunnerSettings` (a schedule's `runner:` section,
which also sets `agentwheel eval`'s defaults).

Two sets of defaults, on purpose: `RunnerConfig`'s are generous limits for scripted
replays (an oracle walking a long normal path must not be cut); `RunnerSettings`' are a
model policy's budget, shared by a schedule's rollouts and held-out evals and by
`agentwheel eval`, so that a checkpoint evaluated by hand measures what the run measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import Field

from agentwheel.settings.strict import Strict

Backend = Literal["mock", "sqlite", "search", "analysis"]


@dataclass(frozen=True)
class RunnerConfig:
    """Limits of a run of episodes; a limit below 1 is refused (a batch size of 0 or less
    would never drain the queue)."""

    max_agent_turns: int = 16
    max_episode_tokens: int = 6144
    batch_size: int = 32
    max_in_flight: int = 256
    backend: Backend | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        for name in ("max_agent_turns", "max_episode_tokens", "batch_size", "max_in_flight"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        known = ("auto", *get_args(Backend))
        if self.backend not in known:
            raise ValueError(f"backend must be one of {', '.join(known)}, got {self.backend!r}")


class RunnerSettings(Strict):
    max_agent_turns: int = Field(8, ge=1, description="Agent turns before an episode is cut.")
    max_episode_tokens: int = Field(4096, ge=1, description="Tokens before an episode is cut.")
    batch_size: int = Field(32, ge=1, description="Episodes per batched model call.")

    def runner_config(self, backend: Backend | Literal["auto"] = "auto") -> RunnerConfig:
        # One batch in flight: more episodes only wait for the model, and their cached
        # prefixes evict each other (150 in flight overflowed the KV cache every turn).
        return RunnerConfig(
            max_agent_turns=self.max_agent_turns,
            max_episode_tokens=self.max_episode_tokens,
            batch_size=self.batch_size,
            max_in_flight=self.batch_size,
            backend=backend,
        )
