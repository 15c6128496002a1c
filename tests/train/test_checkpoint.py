import json
import random

import torch
from transformers import AutoModelForCausalLM

from agentwheel.train.batching import TrainSequence
from agentwheel.train.config import GRPOConfig, LoraSettings, SFTConfig
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
    # Saving again over it replaces it atomically and leaves no temporary directories.
    trainer.step(dataset(2))
    trainer.save(path)
    assert json.loads((path / "state.json").read_text())["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


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
