import json
import os
import random
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM

from agentwheel.settings.trainer import GRPOConfig, LoraSettings, SFTConfig
from agentwheel.train.batching import TrainSequence
from agentwheel.train.checkpoint import (
    CheckpointDamaged,
    TrainerState,
    is_complete,
    keep_weights,
    load_checkpoint,
    read_run_state,
    recover_checkpoint,
    save_checkpoint,
    weights_digest,
)
from agentwheel.train.grpo import GRPOTrainer
from agentwheel.train.sft import SFTTrainer
from tests.train.conftest import make_trajectory, random_trace, tiny_model


def dataset(n=6):
    rng = random.Random(1)
    return [TrainSequence.from_trace(random_trace(rng)) for _ in range(n)]


def params(model):
    return [p.detach().clone() for p in model.parameters()]


def test_sft_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    # Dropout makes the run consume the torch RNG, so RNG state must be restored too;
    # 3 batches per epoch, so the 4 steps cross an epoch boundary (data position).
    config = SFTConfig(lr=1e-2, batch_size=2, epochs=2, warmup_steps=2, micro_batch_tokens=30)
    data = dataset()

    straight = SFTTrainer(tiny_model(dropout=0.3), config)
    straight_losses = [m.loss for m in straight.train(data, max_steps=4)]

    first = SFTTrainer(tiny_model(dropout=0.3), config)
    losses = [m.loss for m in first.train(data, max_steps=2)]
    first.save(tmp_path / "ckpt")
    torch.manual_seed(1234)  # whatever happens in between must not matter
    del first

    resumed = SFTTrainer(tiny_model(seed=99, dropout=0.3), config)  # fresh, different weights
    state = resumed.load(tmp_path / "ckpt")
    assert state.step == 2 and state.data_position == {"epoch": 0, "batch_in_epoch": 2}
    losses += [m.loss for m in resumed.train(data, max_steps=4)]

    assert losses == straight_losses
    assert all(
        torch.equal(a, b)
        for a, b in zip(params(resumed.model), params(straight.model), strict=True)
    )


def test_checkpoint_is_a_hugging_face_model_directory(tmp_path):
    trainer = SFTTrainer(tiny_model(), SFTConfig(lr=1e-2))
    trainer.step(dataset(2))
    path = trainer.save(tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == [
        "COMPLETE",
        "model",
        "state.json",
        "train_config.json",
        "trainer_state.pt",
    ]
    assert (path / "model" / "model.safetensors").exists()
    assert json.loads((path / "state.json").read_text())["step"] == 1
    assert json.loads((path / "train_config.json").read_text())["kind"] == "SFTConfig"
    loaded = AutoModelForCausalLM.from_pretrained(path / "model")
    assert all(
        torch.equal(a, b) for a, b in zip(params(loaded), params(trainer.model), strict=True)
    )
    # Saving again over it replaces it atomically, keeps the one before as the fallback
    # and leaves no temporary directories.
    trainer.step(dataset(2))
    trainer.save(path)
    assert json.loads((path / "state.json").read_text())["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "ckpt.previous"]
    assert json.loads((tmp_path / "ckpt.previous" / "state.json").read_text())["step"] == 1


def toy_groups(seed):
    rng = random.Random(seed)
    return [
        [
            make_trajectory(random_trace(rng), passed=p, task_id=f"t{g}", trial=i)
            for i, p in enumerate([True, False, False])
        ]
        for g in range(2)
    ]


def test_grpo_lora_resume_and_merged_export(tmp_path):
    config = GRPOConfig(lr=1e-2, lora=LoraSettings(rank=4, alpha=8.0), kl_coef=0.01)
    straight = GRPOTrainer(tiny_model(), config)
    straight_losses = [straight.step(toy_groups(s)).loss for s in range(4)]

    first = GRPOTrainer(tiny_model(), config)
    losses = [first.step(toy_groups(s)).loss for s in range(2)]
    first.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "adapter" / "adapter_model.safetensors").exists()

    # The merged export computes what the adapter-wrapped model computes.
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt" / "model")
    ids = torch.tensor([[1, 5, 9, 33, 70, 2]])
    with torch.no_grad():
        first.model.eval()
        assert torch.allclose(merged(ids).logits, first.model(input_ids=ids).logits, atol=1e-5)

    resumed = GRPOTrainer(tiny_model(), config)  # the base model again, new adapters
    resumed.load(tmp_path / "ckpt")
    losses += [resumed.step(toy_groups(s)).loss for s in range(2, 4)]
    assert losses == straight_losses
    assert all(
        torch.equal(a, b)
        for a, b in zip(params(resumed.model), params(straight.model), strict=True)
    )


def saved_trainer(tmp_path, steps):
    trainer = SFTTrainer(tiny_model(), SFTConfig(lr=1e-2, batch_size=2))
    for _ in range(steps):
        trainer.step(dataset(2))
    return trainer


def test_run_state_commits_with_the_checkpoint(tmp_path):
    trainer = saved_trainer(tmp_path, 1)
    path = trainer.save(tmp_path / "last")
    assert read_run_state(path) is None
    from agentwheel.train.checkpoint import TrainerState, save_checkpoint

    save_checkpoint(
        path, trainer.model, trainer.optimizer, TrainerState(step=1), run_state='{"x": 1}'
    )
    assert read_run_state(path) == '{"x": 1}'


KILL_SCRIPT = """
import sys
from pathlib import Path
from agentwheel.settings.trainer import SFTConfig
from agentwheel.train.sft import SFTTrainer
from tests.train.conftest import tiny_model
from tests.train.test_checkpoint import dataset
trainer = SFTTrainer(tiny_model(), SFTConfig(lr=1e-2, batch_size=2))
for _ in range(int(sys.argv[2])):
    trainer.step(dataset(2))
    trainer.save(Path(sys.argv[1]))
"""


def save_and_kill(tmp_path, steps, point):
    env = {**os.environ, "AGENTWHEEL_CRASH_AT": point}
    done = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "last"), str(steps)],
        env=env,
        cwd=os.getcwd(),
        capture_output=True,
    )
    return done.returncode


@pytest.mark.parametrize(
    ("point", "expected_step"),
    [
        # killed while writing step 2: step 1 stands (the partial one is never used)
        ("checkpoint:before_complete@2", 1),
        # killed with step 1 moved aside and step 2 complete but not yet renamed in
        ("checkpoint:between_renames@2", 2),
        ("checkpoint:after_rename@2", 2),
    ],
)
def test_a_kill_inside_the_checkpoint_commit_leaves_a_loadable_checkpoint(
    tmp_path, point, expected_step
):
    assert save_and_kill(tmp_path, 3, point) == -9
    path = tmp_path / "last"
    recover_checkpoint(path)
    assert is_complete(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # temporaries cleaned
    state = load_checkpoint(path, tiny_model())
    assert state.step == expected_step


def test_a_truncated_checkpoint_is_reported_not_a_traceback(tmp_path):
    path = saved_trainer(tmp_path, 1).save(tmp_path / "last")
    weights = path / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointDamaged, match="cannot be loaded"):
        load_checkpoint(path, tiny_model())
    other = saved_trainer(tmp_path, 1).save(tmp_path / "other")
    (other / "trainer_state.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointDamaged, match="cannot be loaded"):
        load_checkpoint(other, tiny_model())


def test_kept_weights_load_alone_and_outlive_the_checkpoint_they_came_from(tmp_path):
    model = tiny_model(seed=1)
    trainer = SFTTrainer(model, SFTConfig(lr=1e-3, batch_size=2), pad_id=0)
    last = tmp_path / "last"
    save_checkpoint(last, trainer.model, trainer.optimizer, TrainerState(step=3))
    kept = keep_weights(last, tmp_path / "round-1")
    digest = weights_digest(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    save_checkpoint(last, trainer.model, trainer.optimizer, TrainerState(step=4))  # replaces
    other = tiny_model(seed=2)
    assert weights_digest(other) != digest
    assert load_checkpoint(kept, other).step == 3
    assert weights_digest(other) == digest
    saved = torch.load(kept / "trainer_state.pt", weights_only=True)
    assert saved["optimizer"] is None


def test_a_bfloat16_checkpoint_is_half_the_size_and_loads_rounded(tmp_path):
    trainer = SFTTrainer(tiny_model(), SFTConfig(lr=1e-2))
    trainer.step(dataset(2))
    full = trainer.save(tmp_path / "full")
    half = trainer.save(tmp_path / "half", save_dtype="bfloat16")
    size = {p: (p / "model" / "model.safetensors").stat().st_size for p in (full, half)}
    assert size[half] < 0.55 * size[full]

    served = AutoModelForCausalLM.from_pretrained(half / "model", dtype="auto")
    assert next(served.parameters()).dtype == torch.bfloat16
    rounded = [p.to(torch.bfloat16) for p in params(trainer.model)]
    assert all(torch.equal(a, b) for a, b in zip(params(served), rounded, strict=True))
    # Resuming a float32 model from it continues from the rounded weights.
    resumed = SFTTrainer(tiny_model(seed=5), SFTConfig(lr=1e-2))
    resumed.load(half)
    assert next(resumed.model.parameters()).dtype == torch.float32
    assert all(
        torch.equal(a, b.float()) for a, b in zip(params(resumed.model), rounded, strict=True)
    )
