"""`RunnerConfig` refuses limits that would hang or crash the runner (a batch size below 1
made `_chunks` loop forever), whoever builds it."""

from __future__ import annotations

import pytest

from agentwheel.settings.runner import RunnerConfig


@pytest.mark.parametrize(
    "field", ["max_agent_turns", "max_episode_tokens", "batch_size", "max_in_flight"]
)
@pytest.mark.parametrize("value", [0, -4])
def test_a_limit_below_one_is_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"{field} must be >= 1, got {value}"):
        RunnerConfig(**{field: value})


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend"):
        RunnerConfig(backend="cloud")  # type: ignore[arg-type]


def test_the_defaults_and_ones_are_fine():
    assert RunnerConfig(max_agent_turns=1, batch_size=1, max_in_flight=1).batch_size == 1
