import random

import torch

from agentwheel.train.batching import TrainSequence, group_by_length, make_micro_batches
from agentwheel.train.logprobs import logprobs_from_hidden, token_logprobs
from tests.train.conftest import VOCAB, random_trace, tiny_model


def naive_logprobs(model, input_ids, attention_mask, targets, temperature=1.0):
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float() / temperature
    log_p = torch.log_softmax(logits, dim=-1)
    return log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1), -(log_p.exp() * log_p).sum(-1)


def _batch(seed=0, rows=3):
    rng = random.Random(seed)
    sequences = [TrainSequence.from_trace(random_trace(rng)) for _ in range(rows)]
    (batch,) = make_micro_batches(sequences, max_tokens=10_000)
    return batch


def test_chunked_logprobs_and_entropy_match_naive_values_and_gradients():
    model = tiny_model()
    batch = _batch()
    mask = batch.target_mask

    naive_lp, naive_entropy = naive_logprobs(
        model, batch.input_ids, batch.attention_mask, batch.targets, temperature=0.7
    )
    (naive_lp * mask).sum().backward()
    naive_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    # chunk_size 5 forces several chunks, one of them ragged.
    out = token_logprobs(
        model,
        batch.input_ids,
        batch.attention_mask,
        batch.targets,
        target_mask=mask,
        chunk_size=5,
        temperature=0.7,
        with_entropy=True,
    )
    out.logprobs.sum().backward()

    assert mask.sum() > 10
    assert torch.allclose(out.logprobs[mask], naive_lp[mask], atol=1e-5, rtol=0)
    assert torch.all(out.logprobs[~mask] == 0)
    assert torch.allclose(out.entropy[mask], naive_entropy[mask], atol=1e-5, rtol=0)
    for p, g in zip(model.parameters(), naive_grads, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-5, rtol=1e-4)


def test_logprobs_from_hidden_is_independent_of_chunk_size():
    torch.manual_seed(0)
    head = torch.nn.Linear(16, VOCAB, bias=False)
    hidden = torch.randn(37, 16)
    targets = torch.randint(0, VOCAB, (37,))
    expected = torch.log_softmax(head(hidden), -1).gather(-1, targets[:, None]).squeeze(-1)
    for chunk in (1, 7, 37, 100):
        got = logprobs_from_hidden(hidden, head, targets, chunk_size=chunk).logprobs
        assert torch.allclose(got, expected, atol=1e-6)


def test_no_grad_and_grad_paths_give_identical_logprobs():
    # GRPO recomputes old log-probs without grad; at the first update the ratio must be 1.
    model = tiny_model()
    batch = _batch(seed=1)
    args = (model, batch.input_ids, batch.attention_mask, batch.targets)
    with torch.no_grad():
        old = token_logprobs(*args, target_mask=batch.target_mask, chunk_size=4).logprobs
    new = token_logprobs(*args, target_mask=batch.target_mask, chunk_size=4).logprobs
    assert torch.equal(old, new.detach())


def test_padding_does_not_change_logprobs():
    model = tiny_model()
    rng = random.Random(3)
    sequences = [TrainSequence.from_trace(random_trace(rng)) for _ in range(2)]
    alone = [make_micro_batches([s], max_tokens=10_000)[0] for s in sequences]
    (together,) = make_micro_batches(sequences, max_tokens=10_000)
    with torch.no_grad():
        for row, index in enumerate(together.index):
            b = alone[index]
            single = token_logprobs(model, b.input_ids, b.attention_mask, b.targets).logprobs[0]
            padded = token_logprobs(
                model, together.input_ids, together.attention_mask, together.targets
            ).logprobs[row, : single.shape[0]]
            assert torch.allclose(single, padded, atol=1e-5)


def test_group_by_length_fits_budget_and_sorts_longest_first():
    lengths = [5, 40, 12, 38, 6, 7, 39]
    groups = group_by_length(lengths, max_tokens=80)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert len(g) == 1 or len(g) * max(lengths[i] for i in g) <= 80
    assert groups[0] == [1, 6]  # 40 and 39 share a batch; 38 would make it 3 x 40 > 80
    assert [lengths[i] for i in groups[-1]] == [7, 6, 5]
