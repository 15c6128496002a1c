"""verl's own code paths with our loop (needs the `verl` extra: `make verl-check`).

verl's `RLHFDataset` loads our export; verl's `AgentLoopWorker` finds `agentwheel_agent`
through the loop config file, builds it with hydra per sample, runs it against a stand-in
server manager backed by the tiny model, and pads, masks and scores the batch; what comes
out equals our own runner's episodes, id for id, for the same seed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("verl", reason="needs the verl extra (make verl-env)")

import torch
from omegaconf import OmegaConf

from agentwheel.export.datasets import VERL_AGENT_NAME, export_verl
from agentwheel.integrations.verl.episode import reward_components
from agentwheel.integrations.verl.verl_config import (
    LOOP_CONFIG,
    compose_verl_config,
    dataset_batch,
    load_rlhf_dataset,
)
from tests.envs.sample_tasks import ALL_KINDS, make_task
from tests.integrations.verl.loop_setup import (
    MAX_AGENT_TURNS,
    MAX_NEW_TOKENS,
    PROMPT_LENGTH,
    RESPONSE_LENGTH,
    TEMPERATURE,
    RecordingServer,
    ReplayServer,
    hf_model,
    oracle_trajectories,
    runner_trajectories,
)
from tests.integrations.verl.test_episode import distinct_openings

TASKS = [make_task(kind) for kind in ALL_KINDS]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer, tiny_model) -> Path:
    """The tiny model as verl reads a model: a directory with config and tokenizer."""
    out = tmp_path_factory.mktemp("tiny-model")
    tokenizer.save_pretrained(out)
    tiny_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def loop_config(tmp_path_factory) -> Path:
    """The bundled loop entry with the test's limits."""
    entries = OmegaConf.load(LOOP_CONFIG)
    entries[0].max_new_tokens = MAX_NEW_TOKENS
    entries[0].max_agent_turns = MAX_AGENT_TURNS
    path = tmp_path_factory.mktemp("loops") / "agent_loops.yaml"
    OmegaConf.save(entries, path)
    return path


@pytest.fixture(scope="module")
def config(model_dir, loop_config):
    return compose_verl_config(
        model_dir,
        prompt_length=PROMPT_LENGTH,
        response_length=RESPONSE_LENGTH,
        agent_loop_config=loop_config,
        overrides=[f"actor_rollout_ref.rollout.temperature={TEMPERATURE}"],
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return export_verl(TASKS, tmp_path_factory.mktemp("export") / "train.parquet")


def run_worker(config, server, parquet: Path):
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    worker = AgentLoopWorker(config, server)
    dataset = load_rlhf_dataset(parquet, worker.tokenizer, config)
    return asyncio.run(worker.generate_sequences(dataset_batch(dataset)))


def unpadded(output, row: int) -> tuple[list[int], list[int], list[int]]:
    """(prompt ids, response ids, response mask) of one row, padding removed."""
    batch = output.batch
    prompt_width = batch["prompts"].shape[1]
    attention = batch["attention_mask"][row]
    prompt = batch["prompts"][row][attention[:prompt_width].bool()].tolist()
    keep = attention[prompt_width:].bool()
    return (
        prompt,
        batch["responses"][row][keep].tolist(),
        batch["response_mask"][row][keep].tolist(),
    )


def test_verls_dataset_loads_our_export(config, exported, tokenizer):
    dataset = load_rlhf_dataset(exported, tokenizer, config)
    assert len(dataset) == len(TASKS)
    row = dataset[1]
    assert row["agent_name"] == VERL_AGENT_NAME
    assert [m["role"] for m in row["raw_prompt"]] == ["system", "user"]
    assert row["raw_prompt"][1]["content"] == TASKS[1].user.request
    assert row["extra_info"]["task_id"] == TASKS[1].id and row["index"] == 1


def test_verls_worker_with_our_loop_equals_our_runner(config, exported, tiny_model, tokenizer):
    reference = runner_trajectories(hf_model(tiny_model, tokenizer), TASKS)
    output = run_worker(config, RecordingServer(hf_model(tiny_model, tokenizer)), exported)
    scores = output.batch["rm_scores"].sum(dim=1).tolist()
    logprobs = output.batch["rollout_log_probs"]
    for row, ref in enumerate(reference):
        assert ref.tokens is not None
        prompt, response, mask = unpadded(output, row)
        assert prompt + response == ref.tokens.ids
        assert mask == ref.tokens.loss_mask[len(prompt) :]
        assert logprobs[row][: len(response)].tolist() == pytest.approx(
            ref.tokens.logprobs[len(prompt) :], abs=1e-5
        )
        assert scores[row] == ref.reward.value
        for key, value in reward_components(ref).items():
            assert output.non_tensor_batch[key][row] == value, key
    assert set(output.meta_info["reward_extra_keys"]) >= set(reward_components(reference[0]))


def test_verls_worker_scores_oracle_episodes_as_our_runner(config, tmp_path, tokenizer):
    tasks = distinct_openings(TASKS)
    reference, oracle = oracle_trajectories(tokenizer, tasks)
    output = run_worker(
        config, ReplayServer(oracle.replies), export_verl(tasks, tmp_path / "o.parquet")
    )
    assert output.batch["rm_scores"].sum(dim=1).tolist() == [1.0] * len(tasks)
    for row, ref in enumerate(reference):
        assert ref.tokens is not None
        prompt, response, mask = unpadded(output, row)
        assert prompt + response == ref.tokens.ids
        assert mask == ref.tokens.loss_mask[len(prompt) :]
        assert 1 in mask[mask.index(0) :], "a generation after a tool or user turn"
    assert torch.equal(
        output.batch["response_mask"].bool()
        & ~output.batch["attention_mask"][:, -RESPONSE_LENGTH:].bool(),
        torch.zeros_like(output.batch["response_mask"]).bool(),
    )


def test_the_launch_overrides_are_valid_keys_of_verls_config(model_dir, tmp_path):
    """Every override the launcher writes names a key verl 0.9's trainer config has."""
    from agentwheel.integrations.verl.launch import verl_ppo_command

    command = verl_ppo_command(
        "qwen3-1.7b",
        tmp_path / "t.parquet",
        tmp_path / "v.parquet",
        tmp_path,
        model=str(model_dir),
        extra=("actor_rollout_ref.rollout.n=4",),
    )
    config = compose_verl_config(model_dir, 16, 16, overrides=command[3:])
    assert config.actor_rollout_ref.rollout.n == 4  # the later override wins
    assert config.data.train_batch_size == 64
    assert config.algorithm.filter_groups.enable is True
    assert config.actor_rollout_ref.actor.clip_ratio_high == 0.28
    assert config.data.apply_chat_template_kwargs.enable_thinking is False
