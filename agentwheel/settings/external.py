"""Who runs a round's RL steps: our GRPO trainer, or verl on Ray (agentwheel/integrations/verl)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentwheel.settings.strict import Strict


class VerlSettings(Strict):
    preset: str = Field(
        "qwen3-1.7b",
        description="How the model fits a node: qwen3-1.7b | qwen3-4b | qwen3-8b "
        "(agentwheel/integrations/verl/launch.py).",
    )
    python: str = Field(
        ".venv-verl/bin/python",
        description="The interpreter that has verl (`make verl-env`), relative to the "
        "working directory or absolute.",
    )
    entrypoint: str = Field(
        "verl.trainer.main_ppo", description="The module run with `python -m` for a round."
    )
    nodes: int = Field(1, ge=1, description="Nodes of the Ray cluster verl trains on.")
    gpus_per_node: int = Field(8, ge=1, description="GPUs per node.")
    ray_address: str | None = Field(
        None, description="An existing Ray cluster (several nodes), e.g. 10.0.0.1:6379."
    )
    save_every: int = Field(
        10,
        ge=1,
        description="verl checkpoints every this many steps of a round (and after its last): "
        "where a killed round resumes.",
    )
    overrides: list[str] = Field(
        default_factory=list, description="More hydra overrides for verl; they win."
    )


class TrainerSettings(Strict):
    backend: Literal["builtin", "verl"] = Field(
        "builtin",
        description="Who runs a round's RL steps: our GRPO trainer in this process, or verl "
        "on Ray (agentic rounds only; evolve, band, evals and checkpoints stay ours).",
    )
    verl: VerlSettings = Field(default_factory=VerlSettings)
