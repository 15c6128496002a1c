import itertools
import random

import pytest
import torch

from agentwheel.settings.trainer import SFTConfig
from agentwheel.train.batching import TrainSequence, make_micro_batches
from agentwheel.train.logprobs import token_logprobs
from agentwheel.train.sft import SFTTrainer, epoch_order, sft_loss, sft_sequences
from tests.train.conftest import make_trajectory, random_trace, tiny_model


def fixed_batch(n=4, seed=0):
    rng = random.Random(seed)
    return [TrainSequence.from_trace(random_trace(rng)) for _ in range(n)]


def test_sft_loss_decreases_on_a_fixed_batch():
    trainer = SFTTrainer(tiny_model(), SFTConfig(lr=1e-2, micro_batch_tokens=40))
    sequences = fixed_batch()
    losses = [trainer.step(sequences).loss for _ in range(8)]
    assert losses[0] == pytest.approx(4.6, abs=0.3)  # ~ln(101) for a random model
    assert all(b < a for a, b in itertools.pairwise(losses))
    assert losses[-1] < losses[0] - 1.0


def test_sft_loss_is_mean_nll_of_agent_tokens_only_with_accumulation():
    model = tiny_model()
    sequences = fixed_batch()
    (whole,) = make_micro_batches(sequences, 10_000)
    with torch.no_grad():
        lp = token_logprobs(model, whole.input_ids, whole.attention_mask, whole.targets).logprobs
    expected = float(-(lp * whole.target_mask).sum() / whole.target_mask.sum())
    # A tiny micro-batch budget splits the step into one micro-batch per sequence.
    metrics = SFTTrainer(model, SFTConfig(lr=1e-3, micro_batch_tokens=10)).step(sequences)
    assert metrics.loss == pytest.approx(expected, abs=1e-5)
    assert metrics.trained_tokens == int(whole.target_mask.sum())


def test_sft_loss_gradient_is_zero_off_mask():
    logprobs = torch.randn(2, 5, requires_grad=True)
    mask = torch.tensor([[0, 1, 1, 0, 0], [1, 0, 0, 0, 1]])
    loss = sft_loss(logprobs, mask)
    loss.backward()
    assert loss.detach().item() == pytest.approx(float(-logprobs.detach()[mask == 1].mean()))
    assert torch.all(logprobs.grad[mask == 0] == 0)
    assert torch.allclose(logprobs.grad[mask == 1], torch.full((4,), -0.25))


def test_epoch_order_is_seeded_and_differs_between_epochs():
    assert epoch_order(10, seed=3, epoch=0) == epoch_order(10, seed=3, epoch=0)
    assert sorted(epoch_order(10, seed=3, epoch=1)) == list(range(10))
    assert epoch_order(10, seed=3, epoch=0) != epoch_order(10, seed=3, epoch=1)


def test_train_runs_epochs_in_batches_and_stops_at_max_steps():
    sequences = fixed_batch(n=5)
    trainer = SFTTrainer(tiny_model(), SFTConfig(lr=1e-3, batch_size=2, epochs=2))
    history = trainer.train(sequences, max_steps=4)
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert [m.epoch for m in history] == [0, 0, 0, 1]  # 3 batches per epoch (2, 2, 1)
    assert [m.sequences for m in history] == [2, 2, 1, 2]
    rest = trainer.train(sequences)
    assert [m.step for m in rest] == [5, 6] and trainer.epoch == 2


def test_sft_sequences_keep_passing_traces():
    rng = random.Random(0)
    trajectories = [make_trajectory(random_trace(rng), passed=p) for p in (True, False, True)]
    assert len(sft_sequences(trajectories, max_seq_len=8)) == 2
    assert all(len(s) == 8 for s in sft_sequences(trajectories, max_seq_len=8, only_passed=False))
