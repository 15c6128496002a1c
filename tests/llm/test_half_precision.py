"""Half precision runs on the CPU only where the CPU has it; float32 elsewhere."""

from __future__ import annotations

import logging

import pytest
import torch

from agentwheel.llm import half_precision
from agentwheel.llm.half_precision import OVERRIDE_VARIABLE, runnable_dtype
from agentwheel.settings.trainer import GRPOConfig
from agentwheel.train.model import autocast
from tests.train.conftest import tiny_model


@pytest.fixture(autouse=True)
def fresh_warning():
    half_precision._warn_fallback.cache_clear()


def test_float32_and_gpus_are_never_changed(monkeypatch):
    monkeypatch.setenv(OVERRIDE_VARIABLE, "0")
    assert runnable_dtype("float32", "cpu") == "float32"
    assert runnable_dtype("bfloat16", "cuda") == "bfloat16"
    assert runnable_dtype("float16", torch.device("cuda", 0)) == "float16"


def test_a_cpu_without_native_half_runs_float32_and_says_so_once(monkeypatch, caplog):
    monkeypatch.setenv(OVERRIDE_VARIABLE, "0")
    with caplog.at_level(logging.WARNING, logger=half_precision.__name__):
        assert runnable_dtype("bfloat16", "cpu") == "float32"
        assert runnable_dtype("bfloat16", torch.device("cpu")) == "float32"
        assert runnable_dtype("float16", "cpu") == "float32"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # one per dtype
    assert "float32 instead" in warnings[0] and OVERRIDE_VARIABLE in warnings[0]


def test_the_override_keeps_half_precision(monkeypatch):
    monkeypatch.setenv(OVERRIDE_VARIABLE, "1")
    assert runnable_dtype("bfloat16", "cpu") == "bfloat16"


def test_without_override_the_cpus_own_capability_decides(monkeypatch):
    monkeypatch.delenv(OVERRIDE_VARIABLE, raising=False)
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert (runnable_dtype("bfloat16", "cpu") == "bfloat16") is native


@pytest.mark.parametrize(("override", "enabled"), [("0", False), ("1", True)])
def test_training_autocast_follows_the_same_rule(monkeypatch, override, enabled):
    monkeypatch.setenv(OVERRIDE_VARIABLE, override)
    model = tiny_model()
    with autocast(model, GRPOConfig(compute_dtype="bfloat16")):
        assert torch.is_autocast_enabled("cpu") is enabled
        out = model(torch.tensor([[1, 2, 3]])).logits
    assert out.dtype == (torch.bfloat16 if enabled else torch.float32)
