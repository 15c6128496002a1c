import math
import random

import pytest
import torch

from agentwheel.settings.trainer import GRPOConfig, LoraSettings
from agentwheel.train.batching import TrainSequence, make_micro_batches
from agentwheel.train.grpo import (
    GRPOTrainer,
    drop_uniform_groups,
    group_advantages,
    grpo_loss,
    rollout_sequences,
    trajectory_reward,
)
from agentwheel.train.logprobs import token_logprobs
from tests.train.conftest import make_trace, make_trajectory, random_trace, tiny_model

PROMPT = [5, 17, 33, 2, 41, 8]
TOOL = [60, 61, 62, 63]
GOOD = [11, 12, 13, 14, 15]
BAD = [21, 22, 23, 24, 25]


def toy_group(tail=(70, 71, 72)):
    """One task, two rollouts: the GOOD response passes, the BAD one fails. Each has a
    tool result (mask 0), a second agent turn, and a closing user turn (mask 0)."""
    return [
        make_trajectory(
            make_trace([(PROMPT, 0), (resp, 1), (TOOL, 0), (resp[:3], 1), (list(tail), 0)]),
            passed=passed,
            trial=i,
        )
        for i, (resp, passed) in enumerate([(GOOD, True), (BAD, False)])
    ]


def sequence_logprob(model, trajectory):
    (batch,) = make_micro_batches([TrainSequence.from_trace(trajectory.tokens)], 10_000)
    with torch.no_grad():
        lp = token_logprobs(model, batch.input_ids, batch.attention_mask, batch.targets).logprobs
    return float((lp * batch.target_mask).sum())


# --- advantages and dynamic sampling ---------------------------------------------------


def test_group_advantages_known_values():
    (adv,) = group_advantages([[1.0, 0.0, 0.0, 1.0]])
    # mean 0.5, sample std sqrt(1/3): 0.5 / 0.57735 = 0.8660
    assert adv == pytest.approx([0.8660254, -0.8660254, -0.8660254, 0.8660254], abs=1e-5)
    (adv,) = group_advantages([[1.0, 0.0, 0.0, 0.0]], normalise_std=False)
    assert adv == pytest.approx([0.75, -0.25, -0.25, -0.25])
    assert group_advantages([[1.0, 1.0, 1.0], [0.0]]) == [[0.0, 0.0, 0.0], [0.0]]


def test_dynamic_sampling_drops_uniform_groups_and_counts_them():
    t = lambda passed: make_trajectory(make_trace([(PROMPT, 0), (GOOD, 1)]), passed)  # noqa: E731
    groups = [
        [t(True), t(False)],
        [t(True), t(True)],
        [t(False), t(False), t(False)],
        [t(False), t(True), t(True)],
    ]
    result = drop_uniform_groups(groups)
    assert result.dropped == 2
    assert result.rewards == [[1.0, 0.0], [0.0, 1.0, 1.0]]
    assert [len(g) for g in result.kept] == [2, 3]


def test_step_with_only_uniform_groups_does_not_update():
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = GRPOTrainer(model, GRPOConfig(lr=1e-2))
    group = toy_group()
    for t in group:
        t.reward.passed = True
    metrics = trainer.step([group])
    assert not metrics.updated and metrics.groups_dropped == 1 and metrics.groups_kept == 0
    assert trainer.step_count == 0
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def test_rollout_sequences_carry_advantages_in_order_and_respect_max_len():
    mixed, uniform = toy_group(), toy_group()
    for t in uniform:
        t.reward.passed = False
    informative, seqs = rollout_sequences([mixed, uniform], GRPOConfig(max_seq_len=12))
    assert informative.dropped == 1
    assert [s.advantage for s in seqs] == pytest.approx([0.7071061, -0.7071061], abs=1e-6)
    assert [len(s) for s in seqs] == [12, 12] and seqs[0].ids[6:11] == GOOD
    config = GRPOConfig(dynamic_sampling=False, normalise_std=False)
    informative, seqs = rollout_sequences([mixed, uniform], config)
    assert informative.dropped == 0
    assert [s.advantage for s in seqs] == [0.5, -0.5, 0.0, 0.0]


# --- the loss --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "advantage", "clipped"),
    [
        (1.10, 1.0, False),
        (1.25, 1.0, False),  # inside clip-higher's 1.28 (a symmetric 0.2 would clip it)
        (1.50, 1.0, True),  # above 1 + clip_high with A > 0: no further push up
        (0.50, 1.0, False),  # below 1 - clip_low with A > 0: pessimistic bound keeps it
        (0.50, -1.0, True),  # below 1 - clip_low with A < 0: no further push down
        (0.90, -1.0, False),
        (1.50, -1.0, False),  # above with A < 0: unclipped, so the ratio is pulled back
    ],
)
def test_clipping_gives_expected_gradient(ratio, advantage, clipped):
    new = torch.tensor([[math.log(ratio), 0.0]], requires_grad=True)
    old = torch.zeros(1, 2)
    mask = torch.tensor([[1, 0]])
    loss, stats = grpo_loss(new, old, torch.tensor([advantage]), mask, clip_low=0.2, clip_high=0.28)
    loss.backward()
    # d/dnew of -(r * A) is -r * A where unclipped; a clipped term is constant.
    expected = 0.0 if clipped else -ratio * advantage
    assert new.grad[0, 0].item() == pytest.approx(expected, abs=1e-6)
    assert new.grad[0, 1].item() == 0.0
    assert stats.clip_fraction == (1.0 if clipped else 0.0)
    assert stats.ratio_mean == pytest.approx(ratio)
    assert loss.item() == pytest.approx(
        -min(ratio * advantage, min(max(ratio, 0.8), 1.28) * advantage)
    )


def test_loss_is_token_mean_with_exactly_zero_gradient_off_mask():
    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 0, 1, 0, 0], [0, 1, 1, 0, 0, 0]])
    new = torch.randn(2, 6) * 0.1
    # Off-mask entries may hold anything, even infinities (and inf * 0 is nan).
    new = torch.where(mask.bool(), new, 80.0).requires_grad_(True)
    old = torch.where(mask.bool(), torch.zeros(2, 6), -torch.inf)
    ref = torch.where(mask.bool(), torch.full((2, 6), -0.05), torch.inf)
    adv = torch.tensor([1.0, -0.5])
    loss, stats = grpo_loss(new, old, adv, mask, kl_coef=0.1, ref_logprobs=ref)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.all(new.grad[mask == 0] == 0.0)
    assert torch.all(new.grad[mask == 1] != 0.0)
    assert stats.num_tokens == 5
    # Token-level mean: each agent token weighs 1/5, whichever sequence it is in.
    r = new.detach().exp()
    d = ref - new.detach()
    per_token = -r * adv[:, None] + 0.1 * (d.exp() - d - 1)
    assert loss.item() == pytest.approx(float(per_token[mask == 1].sum() / 5), abs=1e-6)


def _param_grads(model, sequences, targets_override=None):
    model.zero_grad()
    (batch,) = make_micro_batches(sequences, 10_000)
    targets = batch.targets if targets_override is None else targets_override(batch)
    new = token_logprobs(
        model,
        batch.input_ids,
        batch.attention_mask,
        targets,
        target_mask=batch.target_mask,
        chunk_size=3,
    ).logprobs
    loss, _ = grpo_loss(new, new.detach() - 0.1, batch.advantages, batch.target_mask)
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def test_user_and_tool_tokens_contribute_exactly_zero_gradient():
    model = tiny_model()
    rng = random.Random(0)
    traces = [random_trace(rng) for _ in range(3)]
    seqs = [
        TrainSequence.from_trace(t, advantage=a)
        for t, a in zip(traces, [1.0, -1.0, 0.5], strict=True)
    ]
    reference = _param_grads(model, seqs)
    assert any(g.abs().sum() > 0 for g in reference)

    # 1. Perturb every target at a mask-0 position (same inputs): identical gradients.
    def scramble(batch):
        noise = torch.randint_like(batch.targets, 0, 100)
        return torch.where(batch.target_mask, batch.targets, noise)

    for got, want in zip(_param_grads(model, seqs, scramble), reference, strict=True):
        assert torch.equal(got, want)

    # 2. Change the user/tool ids after each sequence's last generated token: identical.
    changed = []
    for s in seqs:
        last = max(i for i, m in enumerate(s.loss_mask) if m)
        ids = s.ids[: last + 1] + [(x + 7) % 100 for x in s.ids[last + 1 :]]
        assert ids != s.ids
        changed.append(TrainSequence(ids, s.loss_mask, advantage=s.advantage))
    for got, want in zip(_param_grads(model, changed), reference, strict=True):
        assert torch.equal(got, want)


def test_trainer_step_ignores_user_and_tool_tokens_end_to_end():
    params = []
    for tail in [(70, 71, 72), (3, 99, 50)]:
        trainer = GRPOTrainer(tiny_model(), GRPOConfig(lr=1e-2, micro_batch_tokens=20))
        trainer.step([toy_group(tail)])
        params.append([p.detach().clone() for p in trainer.model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*params, strict=True))


# --- the trainer -----------------------------------------------------------------------


def test_one_step_raises_the_passing_response_and_lowers_the_failing_one():
    model = tiny_model()
    group = toy_group()
    good_before, bad_before = (sequence_logprob(model, t) for t in group)
    # micro_batch_tokens=20 puts each rollout in its own micro-batch (accumulation).
    trainer = GRPOTrainer(model, GRPOConfig(lr=1e-2, micro_batch_tokens=20))
    metrics = trainer.step([group])
    good_after, bad_after = (sequence_logprob(model, t) for t in group)

    assert metrics.updated and metrics.step == 1 and trainer.step_count == 1
    assert good_after > good_before + 0.1
    assert bad_after < bad_before - 0.1
    # Old log-probs were recomputed from the same weights: on-policy, ratio exactly 1.
    assert metrics.ratio_mean == pytest.approx(1.0, abs=1e-6)
    assert metrics.clip_fraction == 0.0 and metrics.approx_kl == pytest.approx(0.0, abs=1e-7)
    assert metrics.trained_tokens == 2 * (5 + 3)
    assert metrics.groups_kept == 1 and metrics.groups_dropped == 0
    assert metrics.reward_mean == 0.5 and metrics.response_tokens_mean == 8.0
    assert metrics.entropy > 0 and metrics.grad_norm > 0 and metrics.tokens_per_s > 0
    # On-policy with A = ±1 and equal token counts, the surrogate sums to 0 at the start.
    assert metrics.loss == pytest.approx(0.0, abs=1e-6)


def test_sampling_logprobs_are_used_as_old_logprobs_when_present():
    model = tiny_model()
    group = toy_group()
    for t in group:
        seq = TrainSequence.from_trace(t.tokens)
        (batch,) = make_micro_batches([seq], 10_000)
        with torch.no_grad():
            lp = token_logprobs(
                model, batch.input_ids, batch.attention_mask, batch.targets
            ).logprobs[0]
        # The sampler saw each agent token as 0.1 nats less likely than the policy does now.
        t.tokens.logprobs = [0.0] + [
            (float(x) - 0.1) if m else 0.0 for x, m in zip(lp, t.tokens.loss_mask[1:], strict=True)
        ]
    metrics = GRPOTrainer(model, GRPOConfig(lr=1e-3)).step([group])
    assert metrics.ratio_mean == pytest.approx(math.exp(0.1), abs=1e-5)
    assert metrics.approx_kl == pytest.approx(math.exp(0.1) - 1 - 0.1, abs=1e-6)


def test_kl_to_reference_is_zero_at_start_then_positive():
    for lora in (None, LoraSettings(rank=4, alpha=8.0)):
        trainer = GRPOTrainer(tiny_model(), GRPOConfig(lr=1e-2, kl_coef=0.05, lora=lora))
        first = trainer.step([toy_group()])
        second = trainer.step([toy_group()])
        assert first.ref_kl == pytest.approx(0.0, abs=1e-7)
        assert second.ref_kl > 1e-6


def test_lora_trains_only_adapters_and_bf16_gradient_checkpointing_runs():
    model = tiny_model()
    base_before = {k: v.clone() for k, v in model.state_dict().items()}
    config = GRPOConfig(
        lr=1e-2,
        lora=LoraSettings(rank=4, alpha=8.0, target_modules=("q_proj", "v_proj")),
        compute_dtype="bfloat16",
        gradient_checkpointing=True,
    )
    trainer = GRPOTrainer(model, config)
    group = toy_group()
    good_before = sequence_logprob(trainer.model, group[0])
    metrics = trainer.step([group])
    assert metrics.updated and math.isfinite(metrics.loss)
    assert sequence_logprob(trainer.model, group[0]) > good_before
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    for name, value in trainer.model.get_base_model().state_dict().items():
        if "lora_" not in name:
            key = name.replace(".base_layer", "")
            assert torch.equal(value, base_before[key]), name


def test_micro_batching_gives_the_loss_and_gradient_of_one_token_mean():
    rng = random.Random(5)
    groups = [
        [
            make_trajectory(random_trace(rng), passed=p, task_id=f"t{g}", trial=i)
            for i, p in enumerate([True, False, True])
        ]
        for g in range(2)
    ]
    results = []
    for budget in (10_000, 25):  # one micro-batch vs one per rollout or two
        trainer = GRPOTrainer(tiny_model(), GRPOConfig(lr=1e-3, micro_batch_tokens=budget))
        metrics = trainer.step(groups)
        results.append((metrics.loss, metrics.grad_norm, metrics.entropy, metrics.trained_tokens))
    whole, split = results
    assert whole[3] == split[3]
    assert split == pytest.approx(whole, rel=1e-5)
    assert whole[0] != pytest.approx(0.0, abs=1e-3)  # unequal lengths: a non-zero surrogate


def test_given_rewards_override_the_environment_verdict():
    """Reasoning rollouts pass graded rewards; a group the environment calls uniform
    (both failed) is informative under the given rewards and is trained on."""
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = GRPOTrainer(model, GRPOConfig(lr=1e-2))
    group = toy_group()
    for t in group:
        t.reward.passed = False
    metrics = trainer.step([group], rewards=[[1.1, 0.1]])
    assert metrics.updated and metrics.groups_kept == 1 and metrics.groups_dropped == 0
    assert metrics.reward_mean == pytest.approx(0.6)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with pytest.raises(ValueError, match="shaped"):
        trainer.step([group], rewards=[[1.0]])


class SeparateRecompute(GRPOTrainer):
    """The trainer as it was: a no-grad pass over every token for the old log-probs."""

    def _old_is_current_forward(self) -> bool:
        return False


def test_old_logprobs_from_the_training_forward_equal_a_separate_recompute():
    rng = random.Random(7)
    groups = [
        [
            make_trajectory(random_trace(rng), passed=p, task_id="t", trial=i)
            for i, p in enumerate([True, False])
        ]
    ]
    config = GRPOConfig(lr=1e-2, old_logprobs="recompute", micro_batch_tokens=25, clip_low=0.01)
    runs = []
    for trainer_class in (GRPOTrainer, SeparateRecompute):
        trainer = trainer_class(tiny_model(), config)
        first, second = trainer.step(groups), trainer.step(groups)
        weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        runs.append((first, second, weights))
    (reused_1, reused_2, reused_w), (separate_1, separate_2, separate_w) = runs
    assert reused_1.grad_norm > 0
    for a, b in ((reused_1, separate_1), (reused_2, separate_2)):
        assert a.loss == pytest.approx(b.loss, abs=1e-6)
        assert a.grad_norm == pytest.approx(b.grad_norm, rel=1e-5)
        assert a.ratio_mean == pytest.approx(1.0, abs=1e-6) == b.ratio_mean
    for name, value in separate_w.items():
        torch.testing.assert_close(reused_w[name], value, atol=1e-6, rtol=1e-5)


def test_a_model_with_dropout_keeps_the_separate_recompute():
    model = tiny_model()
    model.config.attention_dropout = 0.1
    trainer = GRPOTrainer(model, GRPOConfig(old_logprobs="recompute"))
    assert not trainer._old_is_current_forward()


def shared_prompt_group(rng, rows=3):
    """Rollouts of one task: the same opening prompt, then different agent and tool turns."""
    prompt = [rng.randrange(3, 90) for _ in range(12)]
    return [
        make_trajectory(
            make_trace(
                [
                    (prompt, 0),
                    ([rng.randrange(3, 90) for _ in range(rng.randrange(2, 7))], 1),
                    ([rng.randrange(3, 90) for _ in range(4)], 0),
                    ([rng.randrange(3, 90) for _ in range(rng.randrange(1, 5))], 1),
                ]
            ),
            passed=i % 2 == 0,
            task_id=f"t{prompt[0]}",
            trial=i,
        )
        for i in range(rows)
    ]


def test_shared_prefix_gives_the_loss_and_gradient_of_whole_rows():
    rng = random.Random(3)
    groups = [shared_prompt_group(rng), shared_prompt_group(rng, rows=4)]
    results = []
    for share in (False, True):
        model = tiny_model()
        trainer = GRPOTrainer(model, GRPOConfig(lr=1e-2, share_prefixes=share))
        sequences = [s for s in rollout_sequences(groups, trainer.config, trajectory_reward)[1]]
        batches = make_micro_batches(sequences, 10_000, share_prefixes=share)
        assert [b.prefix_len > 0 for b in batches] == [share] * len(batches)
        metrics = trainer.step(groups)
        results.append((metrics, {k: v.clone() for k, v in model.state_dict().items()}))
    (whole, whole_w), (shared, shared_w) = results
    assert whole.trained_tokens == shared.trained_tokens > 0
    assert shared.loss == pytest.approx(whole.loss, abs=1e-6)
    assert shared.grad_norm == pytest.approx(whole.grad_norm, rel=1e-4)
    for name, value in whole_w.items():
        torch.testing.assert_close(shared_w[name], value, atol=1e-5, rtol=1e-4)


def test_shared_prefix_batches_count_the_prompt_once():
    rng = random.Random(4)
    sequences = [TrainSequence.from_trace(t.tokens) for t in shared_prompt_group(rng, rows=4)]
    (batch,) = make_micro_batches(sequences, 10_000, share_prefixes=True)
    assert batch.prefix_len >= 12 - 1
    assert (batch.input_ids[:, : batch.prefix_len] == batch.input_ids[0, : batch.prefix_len]).all()
