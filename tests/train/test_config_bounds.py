"""Trainer configs refuse knobs out of range when built, naming the knob, the value and
the range (a config file reports the same line through `agentwheel train`)."""

from __future__ import annotations

import pytest

from agentwheel.settings.trainer import GRPOConfig, LoraSettings, SFTConfig


@pytest.mark.parametrize(
    ("cls", "field", "value", "allowed"),
    [
        (SFTConfig, "epochs", -1, ">= 1"),
        (SFTConfig, "epochs", 0, ">= 1"),
        (SFTConfig, "batch_size", 0, ">= 1"),
        (SFTConfig, "warmup_steps", -1, ">= 0"),
        (SFTConfig, "seed", -3, ">= 0"),
        (GRPOConfig, "weight_decay", -0.1, ">= 0"),
        (GRPOConfig, "adam_beta1", 1.0, "[0, 1)"),
        (GRPOConfig, "adam_beta2", -0.5, "[0, 1)"),
        (GRPOConfig, "adam_eps", 0.0, "> 0"),
        (GRPOConfig, "max_grad_norm", 0.0, "> 0"),
        (GRPOConfig, "lr", 0.0, "> 0"),
        (GRPOConfig, "clip_low", 1.0, "[0, 1)"),
        (GRPOConfig, "clip_high", -0.1, ">= 0"),
        (GRPOConfig, "kl_coef", -1.0, ">= 0"),
        (GRPOConfig, "max_seq_len", 1, ">= 2"),
        (LoraSettings, "rank", 0, ">= 1"),
        (LoraSettings, "alpha", 0.0, "> 0"),
        (LoraSettings, "dropout", 1.0, "[0, 1)"),
    ],
)
def test_a_knob_out_of_range_is_refused_naming_it(cls, field, value, allowed):
    with pytest.raises(ValueError) as caught:
        cls(**{field: value})
    assert str(caught.value) == f"{field} must be {allowed}, got {value}"


def test_defaults_are_in_range():
    assert SFTConfig().epochs == 1 and GRPOConfig().clip_low == 0.2
    assert LoraSettings().rank == 16


def test_schedule_runs_keep_one_batch_of_episodes_in_flight():
    from agentwheel.settings.runner import RunnerSettings

    config = RunnerSettings(batch_size=7).runner_config()
    # More in flight than one batch overflows the KV cache with waiting episodes.
    assert (config.batch_size, config.max_in_flight) == (7, 7)
