"""A study's portable copy: small, without full weights or optimizer moments, and enough
for a fresh directory (another machine) to resume the study without redoing anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agentwheel.cli.study import load_study_config
from agentwheel.core.run_layout import STUDY_STATE, StudyLayout
from agentwheel.core.yaml_text import load_yaml
from agentwheel.settings.schedule import ScheduleConfig
from agentwheel.study.portable import (
    GZIPPED,
    export_study,
    rebuild_from_adapter,
    restore_study,
)
from agentwheel.study.run import StudyRun, run_study
from tests.train.conftest import one_torch_thread, require_bundled_gguf

LORA = ["sft.train.lora={rank: 4}", "grpo.lora={rank: 4}", "study.rounds=2"]


@pytest.fixture(scope="module")
def lora_study(tmp_path_factory):
    require_bundled_gguf()
    config = load_study_config("study-tiny", LORA)
    out = tmp_path_factory.mktemp("lora_study") / "run"
    with one_torch_thread():
        result = run_study(config, out, log=lambda _: None)
    return config, out, result


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model" / "model.safetensors")


def test_the_copy_leaves_out_what_can_be_rebuilt(lora_study, tmp_path):
    _, out, _ = lora_study
    summary = export_study(out, tmp_path / "portable")
    portable = tmp_path / "portable"
    assert not list(portable.rglob("model/*.safetensors"))
    assert not [p for p in portable.rglob("*") if p.name.endswith(".previous")]
    # the arm's last checkpoint is its last round's: one copy and a note
    assert (
        portable / "arms/rl_static/checkpoints/last/adapter/adapter_model.safetensors.same-as"
    ).exists()
    assert list(portable.rglob("adapter/adapter_model.safetensors"))
    state = torch.load(
        next(portable.rglob("trainer_state.pt")), map_location="cpu", weights_only=True
    )
    assert state["optimizer"] is None and "rng" in state
    whole = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert summary["bytes"] * 4 < whole


def test_a_fresh_directory_resumes_from_the_copy_and_redoes_nothing(lora_study, tmp_path):
    config, out, result = lora_study
    export_study(out, tmp_path / "portable", compress_above=0)  # every trace gzipped
    assert list((tmp_path / "portable").rglob("traces.jsonl" + GZIPPED))
    assert not list((tmp_path / "portable").rglob("traces.jsonl"))
    fresh = tmp_path / "fresh"
    rebuilt = restore_study(
        tmp_path / "portable", fresh, rebuild_from_adapter(config.model, config.seed)
    )
    relative = {p.relative_to(fresh).as_posix() for p in rebuilt}
    assert "shared/checkpoints/sft" in relative
    assert {"arms/rl_static/checkpoints/last", "arms/rl_flywheel/checkpoints/round-2"} <= relative
    assert not (fresh / "arms/rl_static/checkpoints/round-1").exists()  # superseded
    for checkpoint in rebuilt:
        again, original = weights(checkpoint), weights(out / checkpoint.relative_to(fresh))
        assert again.keys() == original.keys()
        for name, tensor in original.items():
            # the adapters travel in bfloat16: the merged weights differ by that rounding
            torch.testing.assert_close(again[name], tensor, atol=2e-3, rtol=1e-2)
    for trace in fresh.rglob("traces.jsonl"):  # unzipped as they were
        assert trace.read_bytes() == (out / trace.relative_to(fresh)).read_bytes()
    traces = {p: p.stat().st_mtime_ns for p in fresh.rglob("traces.jsonl")}
    done = json.loads((fresh / STUDY_STATE).read_text())["done"]
    log: list[str] = []
    again = run_study(config, fresh, resume=True, log=log.append)
    assert {p: p.stat().st_mtime_ns for p in fresh.rglob("traces.jsonl")} == traces
    assert json.loads((fresh / STUDY_STATE).read_text())["done"] == done
    changed = {
        (arm, key)
        for arm, line in result["arms"].items()
        for key, value in line.items()
        if again["arms"][arm][key] != value and key != "weights"  # a path: the run moved
    }
    assert not changed, {
        k: (result["arms"][k[0]][k[1]], again["arms"][k[0]][k[1]]) for k in changed
    }


def test_a_started_arm_restored_elsewhere_reads_the_new_shared_phase(lora_study, tmp_path):
    config, out, _ = lora_study
    export_study(out, tmp_path / "portable")
    fresh = tmp_path / "fresh"
    restore_study(tmp_path / "portable", fresh, rebuild_from_adapter(config.model, config.seed))
    arm = StudyLayout(fresh).arm("rl_static")

    def shared_paths() -> tuple[str | None, str | None]:
        saved = ScheduleConfig.model_validate(load_yaml(arm.config.read_text()))
        return saved.model.init_from, saved.data.reuse_from

    assert shared_paths()[0].startswith(str(out.resolve()))  # where the arm began
    log: list[str] = []
    study = StudyRun(config, fresh, resume=True, log=log.append)
    study.relocate_arm(arm)
    shared = StudyLayout(fresh.resolve()).shared
    assert shared_paths() == (str(shared.sft_checkpoint), str(shared.data))
    assert len(log) == 1 and "rl_static" in log[0]
    study.relocate_arm(arm)
    assert len(log) == 1  # already there: nothing rewritten


def test_a_full_fine_tune_is_refused_with_the_fix(tmp_path):
    checkpoint = tmp_path / "run" / "shared" / "checkpoints" / "sft"
    (checkpoint / "model").mkdir(parents=True)
    (checkpoint / "trainer_state.pt").write_bytes(b"")
    (tmp_path / "run" / STUDY_STATE).write_text("{}")
    with pytest.raises(ValueError, match="needs LoRA"):
        export_study(tmp_path / "run", tmp_path / "portable")
