"""verl's trainer config with agentwheel's agent loop wired in, and our export as verl's
dataset: what the CPU checks, the benchmark and the GPU script share. Imports verl."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

LOOP_CONFIG = Path(str(resources.files("agentwheel.integrations.verl") / "agent_loops.yaml"))
"""verl's `agent_loop_config_path` entry for `agentwheel_agent` (its options as keys)."""


def loop_overrides(
    model: str | Path,
    prompt_length: int,
    response_length: int,
    agent_loop_config: Path = LOOP_CONFIG,
) -> list[str]:
    """The hydra overrides that make verl roll out with our loop: the model, the lengths,
    the loop config file, log-probs from the server (token-in, token-out), and a
    `data.max_prompt_length` equal to the rollout's."""
    return [
        f"actor_rollout_ref.model.path={model}",
        f"actor_rollout_ref.rollout.prompt_length={prompt_length}",
        f"actor_rollout_ref.rollout.response_length={response_length}",
        f"actor_rollout_ref.rollout.agent.agent_loop_config_path={Path(agent_loop_config).resolve()}",
        "actor_rollout_ref.rollout.calculate_log_probs=true",
        f"data.max_prompt_length={prompt_length}",
        f"data.max_response_length={response_length}",
    ]


def compose_verl_config(
    model: str | Path,
    prompt_length: int,
    response_length: int,
    agent_loop_config: Path = LOOP_CONFIG,
    overrides: Sequence[str] = (),
    rollout_name: str = "vllm",
) -> Any:
    """verl's `ppo_trainer` config (a DictConfig) with our loop and `overrides` applied."""
    import verl
    from hydra import compose, initialize_config_dir

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(
            config_name="ppo_trainer",
            overrides=[
                *loop_overrides(model, prompt_length, response_length, agent_loop_config),
                f"actor_rollout_ref.rollout.name={rollout_name}",
                *overrides,
            ],
        )


def load_rlhf_dataset(parquet: Path, tokenizer: Any, config: Any) -> Any:
    """Our verl export as verl's own `RLHFDataset` reads it."""
    from verl.utils.dataset.rl_dataset import RLHFDataset

    return RLHFDataset([str(parquet)], tokenizer, config.data)


def dataset_batch(dataset: Any, indices: Sequence[int] | None = None) -> Any:
    """Rows of an `RLHFDataset` as the `DataProto` verl's rollout workers receive."""
    from verl.protocol import DataProto
    from verl.utils.dataset.rl_dataset import collate_fn

    rows = [dataset[i] for i in (indices if indices is not None else range(len(dataset)))]
    return DataProto.from_single_dict(collate_fn(rows))
