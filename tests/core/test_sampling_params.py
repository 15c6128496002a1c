"""`SamplingParams` refuses settings no back-end can honour, naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentwheel.core.messages import SamplingParams


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_new_tokens", 0),
        ("max_new_tokens", -5),
        ("temperature", -1.0),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("seed", -1),
    ],
)
def test_nonsense_is_refused(field, value):
    with pytest.raises(ValidationError) as caught:
        SamplingParams(**{field: value})
    assert caught.value.errors()[0]["loc"] == (field,)


def test_edges_are_accepted():
    params = SamplingParams(max_new_tokens=1, temperature=0.0, top_p=1.0, seed=0)
    assert (params.max_new_tokens, params.top_p, params.seed) == (1, 1.0, 0)
    assert SamplingParams(seed=None).seed is None
