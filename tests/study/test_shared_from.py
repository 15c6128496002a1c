"""`agentwheel study --shared-from`: a new study that copies another's finished shared phase
(data, SFT, the refuse/base/SFT evals) redoes none of it, starts its arms from the same SFT
weights, and refuses a source whose shared phase read settings that differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.cli.study import load_study_config
from agentwheel.core.dataset import load_tasks
from agentwheel.core.run_layout import StudyLayout
from agentwheel.study.portable import PORTABLE_MANIFEST
from agentwheel.study.run import run_study
from agentwheel.study.shared_from import SharedFromError, shared_differences, start_from_shared
from agentwheel.train.checkpoint import load_checkpoint, weights_digest
from agentwheel.train.model_factory import build_model
from tests.train.conftest import one_torch_thread, require_bundled_gguf

TINY = "study-tiny"
NEW_RL = ["grpo.lr=5e-4", "study.rl_seed=3"]  # settings only the RL arms read


class StopAtTheArms(Exception):
    pass


def _stop_at_the_arms(line: str) -> None:
    if line == "== study: arm:rl_flywheel":
        raise StopAtTheArms


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A tiny study stopped once its shared phase and check are done."""
    require_bundled_gguf()
    out = tmp_path_factory.mktemp("source") / "study"
    with one_torch_thread(), pytest.raises(StopAtTheArms):
        run_study(load_study_config(TINY), out, log=_stop_at_the_arms)
    return out


def _sft_digest(study: Path) -> str:
    config = load_study_config(TINY)
    model = build_model(config.model, config.seed)
    load_checkpoint(StudyLayout(study).shared.sft_checkpoint, model.model)
    return weights_digest(model.model)


def test_a_study_from_another_s_shared_phase_redoes_none_of_it(source, tmp_path):
    config = load_study_config(TINY, NEW_RL)
    out = tmp_path / "new"
    assert start_from_shared(source, out, config).done == ["shared"]
    logs: list[str] = []
    result = run_study(config, out, resume=True, log=logs.append)
    phases = [line for line in logs if line.startswith("== study: ")]
    assert phases[0] == "== study: check"
    assert "== study: shared" not in phases and "== study: arm:rl_static" in phases
    assert _sft_digest(out) == _sft_digest(source)
    # the SFT arm's held-out episodes are the source's, byte for byte
    traces = [StudyLayout(d).shared.eval_dir("sft") / "traces.jsonl" for d in (out, source)]
    assert traces[0].read_bytes() == traces[1].read_bytes()
    for arm in ("rl_static", "rl_flywheel"):
        arm_config = (out / "arms" / arm / "config.yaml").read_text()
        assert "lr: 0.0005" in arm_config
        assert "\nseed: 3\n" in arm_config  # a second training draw: the arms' own seed
        state = json.loads((out / "arms" / arm / "state.json").read_text())
        assert state["started_from"]["weights_sha256"] == _sft_digest(source)
    assert result["shared_from"] == str(source.resolve())
    # where the copied shared phase ran comes with it
    source_state = json.loads((source / "study_state.json").read_text())
    assert result["ran_on"]["shared"] == source_state["ran_on"]["shared"]
    assert f"copied from {source.resolve()}" in (out / "study.md").read_text()


def test_settings_the_shared_phase_read_must_match(source, tmp_path):
    config = load_study_config(TINY, ["sft.train.lr=5e-3", "data.held_out_tasks=6", *NEW_RL])
    with pytest.raises(SharedFromError, match=r"data\.held_out_tasks, sft\.train\.lr differ"):
        start_from_shared(source, tmp_path / "new", config)
    assert not (tmp_path / "new").exists()
    # only RL settings differ: nothing to report
    assert shared_differences(load_study_config(TINY), config) == [
        "data.held_out_tasks",
        "sft.train.lr",
    ]
    rl_only = load_study_config(TINY, ["study.rounds=3", "rollout.temperature=1.3", *NEW_RL])
    assert rl_only.study.rl_seed == 3
    assert shared_differences(load_study_config(TINY), rl_only) == []


def test_a_changed_rl_pool_setting_makes_a_new_pool(source, tmp_path):
    config = load_study_config(TINY, ["data.rl_tasks_per_workflow=1"])
    out = tmp_path / "new"
    start_from_shared(source, out, config)
    with pytest.raises(StopAtTheArms):
        run_study(config, out, resume=True, log=_stop_at_the_arms)
    pool = load_tasks(StudyLayout(out).shared.rl_tasks).tasks
    assert pool and all(t.id.startswith("rl.") for t in pool)
    assert not StudyLayout(source).shared.rl_tasks.exists()


def test_the_cli_refuses_a_portable_copy_and_a_resume_in_one_line(source, tmp_path):
    portable = tmp_path / "portable"  # what --export-to writes: no weights to copy
    portable.mkdir()
    (portable / PORTABLE_MANIFEST).write_text("{}")
    runner = CliRunner()
    cases = {
        ("--shared-from", str(portable)): "restore it first",
        ("--shared-from", str(source), "--resume"): "--shared-from starts a new study",
        ("--shared-from", str(tmp_path)): "holds no study",
    }
    for i, (args, message) in enumerate(cases.items()):
        out = tmp_path / f"out{i}"
        result = runner.invoke(app, ["study", "--config", TINY, "--out", str(out), *args])
        assert result.exit_code == 1, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in " ".join(result.output.split()), result.output
        assert not (out / "shared").exists()
