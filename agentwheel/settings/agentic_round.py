"""An agentic RL round's settings (the round itself: agentwheel/train/rounds/agentic.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentwheel.settings.rl_round import RLRound

Operator = Literal["deepen", "lookup"]


def _every_operator() -> list[Operator]:
    return ["deepen", "lookup"]


class AgenticRound(RLRound):
    """One agentic RL round: flywheel refresh, then GRPO on the learnable tasks."""

    kind: Literal["agentic"] = "agentic"
    evolve: bool = Field(True, description="Evolve tasks with the agentic flywheel first.")
    evolve_tasks_per_workflow: int = Field(4, ge=1, description="New tasks per evolved tree.")
    band_samples: int = Field(2, ge=1, description="Attempts per new task for the band.")
    probe_tasks: int = Field(4, ge=1, description="Pool tasks probed when no rollouts exist.")
    min_round_tasks: int | None = Field(
        None,
        ge=1,
        description="A smaller learnable band is topped up with pool tasks to this many "
        "(default: steps × batch_groups), so a thin band cannot starve the round.",
    )
    operators: list[Operator] = Field(
        default_factory=_every_operator,
        min_length=1,
        description="How the flywheel makes new tasks (agentwheel/flywheels/agentic/evolve.py).",
    )
    balance_kinds: bool = Field(
        False,
        description="Draw each step's tasks one branch kind at a time, so every kind the "
        "round's tasks have (happy and clarify too) reaches the batches in turn.",
    )
