"""A separate generation engine stays in step with the trained weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agentwheel.core.messages import ChatRequest, Message, SamplingParams
from agentwheel.llm.half_precision import OVERRIDE_VARIABLE
from agentwheel.settings.config_file import apply_overrides
from agentwheel.settings.generation import GenerationSettings
from agentwheel.settings.schedule import load_config
from agentwheel.train.generation import Generator
from agentwheel.train.model import copy_named_weights, merged_copy, merged_state_dict
from agentwheel.train.report import read_metrics
from agentwheel.train.schedule import ScheduleRun
from tests.train.conftest import require_bundled_gguf, tiny_chat_model

TINY = Path(__file__).parents[2] / "agentwheel" / "configs" / "tiny.yaml"
TIMING = {"step_s", "tokens_per_s"}


@pytest.fixture
def tiny():
    return tiny_chat_model()


def _greedy(model, text="Cancel order 7 please") -> list[int]:
    [out] = model.chat(
        [ChatRequest(messages=[Message(role="user", content=text)])],
        SamplingParams(max_new_tokens=12, temperature=0.0),
    )
    return out.completion_ids or []


def test_shared_backend_is_the_trained_model(tiny):
    generator = Generator(GenerationSettings(), tiny, lambda: tiny.model)
    assert generator.chat_model() is tiny and generator.refreshes == 0


def test_hf_copy_is_refreshed_only_when_marked_stale(tiny):
    generator = Generator(
        GenerationSettings(backend="hf", dtype="float32"), tiny, lambda: tiny.model
    )
    engine = generator.chat_model()
    assert engine is not tiny and engine.model is not tiny.model
    assert _greedy(engine) == _greedy(tiny)
    for name, p in tiny.model.named_parameters():
        assert torch.equal(engine.model.get_parameter(name), p), name

    with torch.no_grad():
        tiny.model.lm_head.weight.mul_(-1.0)
    assert generator.chat_model() is engine and generator.refreshes == 1
    assert not torch.equal(engine.model.lm_head.weight, tiny.model.lm_head.weight)
    generator.mark_stale()
    generator.chat_model()
    assert generator.refreshes == 2
    assert torch.equal(engine.model.lm_head.weight, tiny.model.lm_head.weight)
    assert _greedy(engine) == _greedy(tiny)


def test_bf16_copy_holds_the_trained_weights_rounded(tiny, monkeypatch):
    monkeypatch.setenv(OVERRIDE_VARIABLE, "1")  # bf16 even on a CPU without native bf16
    generator = Generator(GenerationSettings(backend="hf"), tiny, lambda: tiny.model)
    engine = generator.chat_model()
    weight = engine.model.model.layers[0].mlp.up_proj.weight
    assert weight.dtype == torch.bfloat16
    assert torch.equal(weight, tiny.model.model.layers[0].mlp.up_proj.weight.bfloat16())


def test_a_cpu_without_native_bf16_generates_from_an_exact_float32_copy(tiny, monkeypatch):
    monkeypatch.setenv(OVERRIDE_VARIABLE, "0")  # as on an AVX2-only CPU
    generator = Generator(GenerationSettings(backend="hf"), tiny, lambda: tiny.model)
    engine = generator.chat_model()
    assert engine.name.endswith("[float32]")
    assert all(p.dtype == torch.float32 for p in engine.model.parameters())
    assert _greedy(engine) == _greedy(tiny)


def test_lora_weights_are_merged_for_the_engine_and_the_trainee_is_untouched(tiny):
    from peft import LoraConfig, get_peft_model

    wrapped = get_peft_model(tiny.model, LoraConfig(r=2, target_modules=["q_proj"]))
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.fill_(0.5)
    before = {k: v.clone() for k, v in wrapped.state_dict().items()}
    merged = merged_state_dict(wrapped)
    assert not any("lora_" in k or "base_layer" in k for k in merged)
    base = wrapped.base_model.model.model.layers[0].self_attn.q_proj
    delta = base.lora_B["default"].weight @ base.lora_A["default"].weight * base.scaling["default"]
    q = "model.layers.0.self_attn.q_proj.weight"
    assert torch.allclose(merged[q], base.base_layer.weight + delta)
    assert not torch.equal(merged[q], base.base_layer.weight)
    assert all(torch.equal(v, before[k]) for k, v in wrapped.state_dict().items())
    # The same weights a checkpoint saves (adapters merged into a copy of the model).
    saved = merged_copy(wrapped).state_dict()
    assert merged.keys() == saved.keys()
    assert all(torch.equal(merged[k], saved[k]) for k in saved)


def test_generation_from_the_merged_copy_equals_the_adapter_model(tiny):
    """Rollouts of a LoRA policy come from a float32 copy with the adapters merged: its
    greedy tokens are the adapter model's own, and the adapters change them."""
    from peft import LoraConfig, get_peft_model

    base_tokens = _greedy(tiny)
    wrapped = get_peft_model(tiny.model, LoraConfig(r=4, target_modules=["q_proj", "up_proj"]))
    generator_ = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator_) * 0.5)
    # As in training: the adapters are injected into the chat model's own module.
    generator = Generator(GenerationSettings(backend="hf", dtype="float32"), tiny, lambda: wrapped)
    engine = generator.chat_model()
    assert not any("lora_" in name for name, _ in engine.model.named_parameters())
    adapter_tokens = _greedy(tiny)
    assert adapter_tokens != base_tokens
    assert _greedy(engine) == adapter_tokens


def test_weights_must_cover_the_model(tiny):
    target = tiny_chat_model(seed=1).model
    weights = dict(tiny.model.state_dict())
    with pytest.raises(KeyError, match="no weight named"):
        copy_named_weights(target, [("nope", torch.zeros(1))])
    weights.pop("model.norm.weight")
    with pytest.raises(ValueError, match=r"model\.norm\.weight"):
        copy_named_weights(target, weights.items())


def test_float32_engine_run_repeats_the_shared_run(tmp_path):
    """Rollouts and evals from a float32 copy refreshed after every update: every metric
    of the tiny schedule equals the run that generates with the trained weights.

    The random-weight model earns no reward, so GRPO leaves its weights as they are; a
    hook stands in for a large update by flipping the output layer after each step."""
    require_bundled_gguf()
    shared = load_config(TINY)
    raw = shared.model_dump(mode="json")
    raw["rounds"] = raw["rounds"][:1]
    shared = shared.model_validate(raw)
    engine = shared.model_validate(
        apply_overrides(raw, ["model.generation={backend: hf, dtype: float32}"])
    )
    for name, config in (("shared", shared), ("engine", engine)):
        run = ScheduleRun(config, tmp_path / name, log=lambda _: None)

        def flip_output_layer(record: dict, run: ScheduleRun = run) -> None:
            if record["stage"] == "grpo":
                with torch.no_grad():
                    run.grpo_trainer().model.lm_head.weight.mul_(-1.0)

        run.on_step = flip_output_layer
        run.run()
    a, b = (read_metrics(tmp_path / n) for n in ("shared", "engine"))
    assert [{k: v for k, v in m.items() if k not in TIMING} for m in a] == [
        {k: v for k, v in m.items() if k not in TIMING} for m in b
    ]
    ids = {n: _generated_ids(tmp_path / n) for n in ("shared", "engine")}
    assert ids["shared"] == ids["engine"]
    step_1, step_2 = ids["shared"]["rounds/round-1/rollouts"]
    assert step_1 != step_2  # the flip changed what the policy samples


def _generated_ids(run_dir: Path) -> dict[str, list[list[int]]]:
    """Per trace file (rollouts, evals), the token ids of every episode in order; the
    rollouts are grouped into halves (one per GRPO step of the tiny round)."""
    out: dict[str, list[list[int]]] = {}
    for traces in sorted(run_dir.glob("**/traces.jsonl")):
        rows = [json.loads(line)["tokens"]["ids"] for line in traces.read_text().splitlines()]
        key = str(traces.parent.relative_to(run_dir))
        if key.endswith("rollouts"):
            half = len(rows) // 2
            out[key] = [_joined(rows[:half]), _joined(rows[half:])]
        else:
            out[key] = [_joined(rows)]
    return out


def _joined(rows: list[list[int]]) -> list[int]:
    return [token for row in rows for token in row]
