"""One owner of a run directory's names: core/run_layout.py. The names are those of run
directories already on disk (a rename would break their `--resume`)."""

from __future__ import annotations

import re
from pathlib import Path

from agentwheel.core import run_layout
from agentwheel.core.run_layout import EngineRoundLayout, RunLayout, StudyLayout

PACKAGE = Path(run_layout.__file__).parents[1]

# Every file and folder name of a run directory that is ours to name (Hugging Face's
# config.json and a model's weights files are the model format's, not the run's).
RUN_NAMES = (
    "config.yaml",
    "state.json",
    "run_state.json",
    "metrics.jsonl",
    "report.md",
    "report.json",
    "tasks.jsonl",
    "pool.jsonl",
    "problems.jsonl",
    "problem_pool.jsonl",
    "selection.json",
    "manifest.json",
    "rejections.jsonl",
    "traces.jsonl",
    "summary.json",
    "eval_key.json",
    "band_traces.jsonl",
    "trainer_state.pt",
    "train_config.json",
    "adapter_model.safetensors",
    "checkpoints",
    "initial_model",
    "synth_seen",
    "study_state.json",
    "study.json",
    "study.md",
    "study_curves.png",
    "held_out_tasks.jsonl",
    "verl.log",
    "train.parquet",
    "val.parquet",
)
# Folder names that are also words of configs and JSON keys: caught when joined to a path.
RUN_FOLDERS = ("rounds", "evals", "shared", "arms", "probe", "rollouts", "synth")


def test_no_module_but_the_layout_spells_a_run_directory_name():
    names = [rf"[\"']{re.escape(name)}[\"']" for name in RUN_NAMES]
    names += [rf"/ [\"']{name}[\"']" for name in RUN_FOLDERS]
    literal = re.compile("|".join(names))
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(run_layout.__file__):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if literal.search(line):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert found == []


def test_the_layout_names_the_files_of_existing_run_directories(tmp_path):
    run = RunLayout(tmp_path)
    relative = {
        name: str(path.relative_to(tmp_path))
        for name, path in {
            "config": run.config,
            "state": run.state,
            "metrics": run.metrics,
            "train": run.train_tasks,
            "held_out": run.held_out_tasks,
            "sft_manifest": run.sft_manifest,
            "eval": run.eval_dir("round-2"),
            "round_pool": run.round(2).pool,
            "round_problems": run.round(2).problem_pool,
            "round_report": run.round(2).report,
            "rollouts": run.round(2).rollouts,
            "engine": run.round(2).engine("verl"),
            "last": run.last_checkpoint,
            "kept": run.round_checkpoint(2),
            "seeds": run.reasoning_seeds,
        }.items()
    }
    assert relative == {
        "config": "config.yaml",
        "state": "state.json",
        "metrics": "metrics.jsonl",
        "train": "data/train/tasks.jsonl",
        "held_out": "data/held_out/tasks.jsonl",
        "sft_manifest": "sft/manifest.json",
        "eval": "evals/round-2",
        "round_pool": "rounds/round-2/pool.jsonl",
        "round_problems": "rounds/round-2/problem_pool.jsonl",
        "round_report": "rounds/round-2/report.json",
        "rollouts": "rounds/round-2/rollouts",
        "engine": "rounds/round-2/verl",
        "last": "checkpoints/last",
        "kept": "checkpoints/round-2",
        "seeds": "reasoning/seeds",
    }


def test_a_study_holds_a_shared_run_and_one_run_per_arm(tmp_path):
    study = StudyLayout(tmp_path)
    assert study.shared.sft_checkpoint == tmp_path / "shared" / "checkpoints" / "sft"
    assert study.arm("rl_static").state == tmp_path / "arms" / "rl_static" / "state.json"
    assert study.eval_set("held_out") == tmp_path / "evals" / "held_out_tasks.jsonl"
    assert study.state == tmp_path / "study_state.json"


def test_an_engine_round_lists_its_launches_metrics_in_launch_order(tmp_path):
    engine = EngineRoundLayout(tmp_path)
    for launch in (10, 2, 1):
        engine.metrics(launch).write_text("")
    assert [p.name for p in engine.metrics_files()] == [
        "metrics-1.jsonl",
        "metrics-2.jsonl",
        "metrics-10.jsonl",
    ]
    assert engine.final_model(3) == tmp_path / "checkpoints/global_step_3/actor/huggingface"
