"""The schedule with an external trainer (`trainer.backend: verl`): each round's RL steps
run on the engine, the weights it returns become the run's policy, and a run whose engine
failed mid-schedule resumes without redoing finished rounds."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from agentwheel.core.external_training import (
    ExternalRoundJob,
    ExternalRoundResult,
    ExternalTrainingFailed,
)
from agentwheel.settings.schedule import load_config
from agentwheel.train.report import read_metrics
from agentwheel.train.schedule import run_schedule
from tests.train.conftest import require_bundled_gguf

TINY = Path(__file__).parents[2] / "agentwheel" / "configs" / "tiny.yaml"
VERL = ["trainer.backend=verl"]


def model_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(file))
    return tensors


@dataclass
class StandInEngine:
    """Trains round r by adding 0.01 x r to every floating-point weight of the job's
    initial model; fails in `fail_round` (as a crashed engine would)."""

    fail_round: int | None = None
    jobs: list[ExternalRoundJob] = field(default_factory=list)
    name: str = "verl"

    def train_round(self, job: ExternalRoundJob) -> ExternalRoundResult:
        self.jobs.append(job)
        if job.round == self.fail_round:
            raise ExternalTrainingFailed(f"engine crashed in round {job.round}")
        tensors = {
            k: v + 0.01 * job.round if v.is_floating_point() else v
            for k, v in model_weights(job.init_model).items()
        }
        out = job.out_dir / "final"
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(job.init_model / "config.json", out / "config.json")
        save_file(tensors, out / "model.safetensors")
        steps = [{"rollout_reward_mean": 0.25 * s, "entropy": 1.0} for s in range(job.steps)]
        return ExternalRoundResult(model_dir=out, steps=steps)


@pytest.fixture(scope="module")
def config():
    require_bundled_gguf()
    return load_config(TINY, VERL)


@pytest.fixture(scope="module")
def verl_run(config, tmp_path_factory) -> tuple[Path, StandInEngine]:
    engine = StandInEngine()
    out = tmp_path_factory.mktemp("verl-run")
    run_schedule(config, out, external=engine, log=lambda _: None)
    return out, engine


def test_each_rounds_rl_steps_run_on_the_engine_from_the_current_policy(config, verl_run):
    out, engine = verl_run
    assert [job.round for job in engine.jobs] == [1, 2]
    first, second = engine.jobs
    assert first.init_model == out / "checkpoints" / "sft" / "model"
    assert second.init_model == out / "checkpoints" / "last" / "model"
    settings = config.rounds[0]
    assert (first.steps, first.groups_per_step, first.rollouts_per_group) == (
        settings.steps,
        settings.batch_groups,
        settings.group_size,
    )
    assert first.lr == config.grpo.lr and first.max_agent_turns == config.runner.max_agent_turns
    assert first.tasks == out / "rounds" / "round-1" / "tasks.jsonl" and first.tasks.exists()
    assert first.out_dir == out / "rounds" / "round-1" / "verl"

    # The rounds' weights: SFT's plus 0.01, then plus 0.02 more.
    sft = model_weights(out / "checkpoints" / "sft" / "model")
    for round_, added in ((1, 0.01), (2, 0.03)):
        kept = model_weights(out / "checkpoints" / f"round-{round_}" / "model")
        assert kept.keys() == sft.keys()
        assert all(torch.allclose(kept[k], sft[k] + added, atol=1e-6) for k in sft)


def test_the_engines_steps_are_the_runs_metrics_and_reports(config, verl_run):
    out, _ = verl_run
    metrics = read_metrics(out)
    rl = [m for m in metrics if m.get("stage") == "grpo"]
    assert [(m["round"], m["step"], m["trainer"]) for m in rl] == [
        (1, 1, "verl"),
        (1, 2, "verl"),
        (2, 1, "verl"),
        (2, 2, "verl"),
    ]
    sft_steps = max(m["global_step"] for m in metrics if m.get("stage") == "sft")
    assert [m["global_step"] for m in rl] == [sft_steps + i for i in (1, 2, 3, 4)]
    assert [m["rollout_reward_mean"] for m in rl] == [0.0, 0.25, 0.0, 0.25]
    report = json.loads((out / "rounds" / "round-2" / "report.json").read_text())
    assert report["steps"] == 2 and report["rollout_reward_mean"] == 0.125
    state = json.loads((out / "state.json").read_text())
    assert state["checkpoint"]["trainer"] == "verl"
    assert {"round-1", "round-2"} <= set(state["evals"])


def test_a_run_whose_engine_failed_resumes_without_redoing_finished_rounds(
    config, verl_run, tmp_path
):
    out, _ = verl_run
    failing = StandInEngine(fail_round=2)
    with pytest.raises(ExternalTrainingFailed, match="round 2"):
        run_schedule(config, tmp_path, external=failing, log=lambda _: None)
    assert [job.round for job in failing.jobs] == [1, 2]

    engine = StandInEngine()
    run_schedule(config, tmp_path, resume=True, external=engine, log=lambda _: None)
    assert [job.round for job in engine.jobs] == [2]
    assert engine.jobs[0].init_model == tmp_path / "checkpoints" / "last" / "model"
    # Two runs in one process agree to float rounding, not bit for bit, on a CPU whose
    # matmul kernels (oneDNN on AMX) may sum in another order: 3e-5 apart here. The stand-in
    # engine moves the weights by 0.01 a round, so a round not imported is still caught.
    for name in ("round-1", "round-2"):
        ours = model_weights(tmp_path / "checkpoints" / name / "model")
        theirs = model_weights(out / "checkpoints" / name / "model")
        for k in theirs:
            torch.testing.assert_close(ours[k], theirs[k], atol=1e-3, rtol=0)
    timing = {"step_s", "tokens_per_s"}
    clean = [{k: v for k, v in m.items() if k not in timing} for m in read_metrics(out)]
    again = [{k: v for k, v in m.items() if k not in timing} for m in read_metrics(tmp_path)]
    assert len(again) == len(clean)
    for line, expected in zip(again, clean, strict=True):
        assert line.keys() == expected.keys()
        for key, value in expected.items():
            close = isinstance(value, float) and not isinstance(value, bool)
            assert line[key] == (pytest.approx(value, rel=1e-3, abs=1e-4) if close else value), key


def test_the_backend_and_the_engine_must_agree(config, tmp_path):
    with pytest.raises(ValueError, match=r"trainer\.backend is verl but the external trainer"):
        run_schedule(config, tmp_path, log=lambda _: None)


def test_an_external_backend_runs_agentic_rounds_only():
    tiny_alternating = TINY.with_name("tiny-alternating.yaml")
    with pytest.raises(ValueError, match="agentic rounds only; this config also has reasoning"):
        load_config(tiny_alternating, VERL)


def test_the_verl_configs_extend_one_another():
    configs = TINY.parent
    one_node = load_config(configs / "verl-qwen3-8b.yaml")
    several = load_config(configs / "verl-qwen3-8b-4nodes.yaml")
    base = load_config(configs / "verl-qwen3-1.7b.yaml")
    assert several.trainer.verl.nodes == 4 and several.trainer.verl.ray_address == "auto"
    assert several.trainer.verl.preset == one_node.trainer.verl.preset == "qwen3-8b"
    assert several.model.spec == "hf:Qwen/Qwen3-8B" and several.name == "verl-qwen3-8b-4nodes"
    # Keys a child does not set come from its parent, mapping by mapping.
    assert several.sft.train.lora is not None and several.sft.train.lr == base.sft.train.lr
    assert several.rounds == base.rounds and several.model.generation == base.model.generation
    assert (several.grpo.lr, base.rounds[0].batch_groups, base.rounds[0].group_size) == (
        1e-6,
        64,
        16,
    )


def test_a_missing_parent_config_is_named(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text("extends: nowhere.yaml\nname: x\n")
    with pytest.raises(FileNotFoundError, match="extends a config that does not exist"):
        load_config(child)
