"""Every path and file name of a run directory, and of the folders inside it (task sets,
evals, rounds, checkpoints, an external engine's round, a study of several runs).

The trainer, the study, the external rounds, the CLI and the readers (the report, the
episode browser) all take their paths from here; no other module spells a run's file
name (tests/core/test_run_layout.py greps for them). The names are those of existing run
directories: changing one breaks `--resume` of runs already on disk.

    <run>/config.yaml state.json metrics.jsonl report.md tb/ plots/
          data/train/tasks.jsonl  data/held_out/{tasks.jsonl,synth/,synth_seen/}
          sft/manifest.json
          evals/<name>/{traces.jsonl,summary.json,eval_key.json}
          reasoning/seeds/
          rounds/round-<r>/{tasks.jsonl,pool.jsonl,problems.jsonl,problem_pool.jsonl,
                            selection.json,report.json,probe/,evolve/,rollouts/,
                            initial_model/,<engine>/}
          checkpoints/{sft,last,round-<r>}/{model/,adapter/,state.json,run_state.json,
                                           trainer_state.pt,train_config.json,COMPLETE}
    <study>/config.yaml study_state.json study.json study.md study_curves.png
            shared/ (a run)  arms/<arm>/ (a run)  evals/
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# -- a run directory's own files

CONFIG = "config.yaml"
STATE = "state.json"
METRICS = "metrics.jsonl"
REPORT_MD = "report.md"
TENSORBOARD_DIR = "tb"
PLOTS_DIR = "plots"
WANDB_DIR = "wandb"
DATA_DIR = "data"
TRAIN_SPLIT = "train"
HELD_OUT_SPLIT = "held_out"
RL_SPLIT = "rl"
SFT_DIR = "sft"
EVALS_DIR = "evals"
ROUNDS_DIR = "rounds"
ROUND_REPORT = "report.json"
ROUND_PREFIX = "round-"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = "last"
SFT_CHECKPOINT = "sft"

# -- a task set's folder (a run's data splits, a round, any synthesis output)

TASKS_FILE = "tasks.jsonl"
MANIFEST_FILE = "manifest.json"
REJECTIONS_FILE = "rejections.jsonl"
PROBLEMS_FILE = "problems.jsonl"  # the reasoning flywheel's problems, as tasks.jsonl

# -- an eval's folder (evals/<name>, a round's rollouts/ and probe/)

TRACES = "traces.jsonl"
SUMMARY = "summary.json"
EVAL_KEY = "eval_key.json"
BAND_TRACES = "band_traces.jsonl"  # the agentic flywheel's band samples, in its evolve/

# -- a checkpoint's folder

CHECKPOINT_STATE = "state.json"  # step and data position, readable
RUN_STATE = "run_state.json"  # the run state committed with the step
TRAINER_STATE = "trainer_state.pt"  # optimizer and RNG
TRAIN_CONFIG = "train_config.json"
COMPLETE = "COMPLETE"
MODEL_DIR = "model"
ADAPTER_DIR = "adapter"
ADAPTER_FILE = "adapter_model.safetensors"

# -- a study directory

STUDY_STATE = "study_state.json"
STUDY_JSON = "study.json"
STUDY_MD = "study.md"
STUDY_CURVES = "study_curves.png"
SHARED_DIR = "shared"
ARMS_DIR = "arms"


def round_dir_name(round_: int) -> str:
    """`round-3`: a round's folder under `rounds/`, and the name of the eval after it."""
    return f"{ROUND_PREFIX}{round_}"


def round_number(name: str) -> int | None:
    """3 for `round-3`; None for any other name (base, sft)."""
    if name.startswith(ROUND_PREFIX) and name[len(ROUND_PREFIX) :].isdigit():
        return int(name[len(ROUND_PREFIX) :])
    return None


def stage_rank(eval_name: str) -> int:
    """Run order of the held-out evals: base, sft, round-1, round-2, ..."""
    return {"base": -2, "sft": -1}.get(eval_name, round_number(eval_name) or 0)


def stage_label(eval_name: str) -> str:
    """How reports name the policy an eval scored: base, after SFT, after RL round-2."""
    return {"base": "base", "sft": "after SFT"}.get(eval_name, f"after RL {eval_name}")


def split_tasks(data_dir: Path, split: str) -> Path:
    """The tasks of one split (`train`, `held_out`) of a run's `data/` folder."""
    return data_dir / split / TASKS_FILE


@dataclass(frozen=True)
class RoundLayout:
    """`rounds/round-<r>/`: what a round selected, rolled out and reported."""

    dir: Path

    @property
    def tasks(self) -> Path:
        """The agentic tasks the round trains on."""
        return self.dir / TASKS_FILE

    @property
    def pool(self) -> Path:
        """The agentic pool grown by the round's band (the next agentic round's pool)."""
        return self.dir / "pool.jsonl"

    @property
    def problems(self) -> Path:
        """The reasoning problems the round trains on."""
        return self.dir / PROBLEMS_FILE

    @property
    def problem_pool(self) -> Path:
        return self.dir / "problem_pool.jsonl"

    @property
    def selection(self) -> Path:
        return self.dir / "selection.json"

    @property
    def report(self) -> Path:
        return self.dir / ROUND_REPORT

    @property
    def probe(self) -> Path:
        """An eval folder: the probe of the pool the first round's flywheel learns from."""
        return self.dir / "probe"

    @property
    def evolve(self) -> Path:
        return self.dir / "evolve"

    @property
    def rollouts(self) -> Path:
        """An eval folder: the round's GRPO rollouts."""
        return self.dir / "rollouts"

    @property
    def initial_model(self) -> Path:
        """The initial weights saved for an external engine (no checkpoint yet)."""
        return self.dir / "initial_model"

    def engine(self, name: str) -> Path:
        """An external engine's own state for the round (`verl/`)."""
        return self.dir / name


@dataclass(frozen=True)
class RunLayout:
    """One training run's directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def state(self) -> Path:
        return self.root / STATE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def report(self) -> Path:
        return self.root / REPORT_MD

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD_DIR

    @property
    def plots(self) -> Path:
        return self.root / PLOTS_DIR

    # -- data

    @property
    def data(self) -> Path:
        """Both splits; what another run's `data.reuse_from` points at."""
        return self.root / DATA_DIR

    @property
    def train_data(self) -> Path:
        """The train pool's task-set folder (synthesis writes it)."""
        return self.data / TRAIN_SPLIT

    @property
    def train_tasks(self) -> Path:
        return split_tasks(self.data, TRAIN_SPLIT)

    @property
    def held_out_tasks(self) -> Path:
        return split_tasks(self.data, HELD_OUT_SPLIT)

    @property
    def rl_tasks(self) -> Path:
        """The RL pool (`data.rl_tasks_per_workflow`)."""
        return split_tasks(self.data, RL_SPLIT)

    @property
    def rl_synth(self) -> Path:
        """Synthesis output for the RL pool (the pool is what survives the leak filter)."""
        return self.data / RL_SPLIT / "synth"

    @property
    def held_out_synth(self) -> Path:
        """Synthesis output for the held-out workflows (the set is drawn from it)."""
        return self.data / HELD_OUT_SPLIT / "synth"

    @property
    def held_out_seen_synth(self) -> Path:
        """Synthesis output for new tasks of the train workflows."""
        return self.data / HELD_OUT_SPLIT / "synth_seen"

    @property
    def reasoning_seeds(self) -> Path:
        """The reasoning flywheel's seed problems, synthesized on first use."""
        return self.root / "reasoning" / "seeds"

    # -- phases

    @property
    def sft_manifest(self) -> Path:
        return self.root / SFT_DIR / MANIFEST_FILE

    @property
    def evals(self) -> Path:
        return self.root / EVALS_DIR

    def eval_dir(self, name: str) -> Path:
        """`evals/<name>`: base, sft, round-<r>."""
        return self.evals / name

    @property
    def rounds(self) -> Path:
        return self.root / ROUNDS_DIR

    def round(self, round_: int) -> RoundLayout:
        return RoundLayout(self.rounds / round_dir_name(round_))

    # -- checkpoints

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / name

    @property
    def last_checkpoint(self) -> Path:
        """Written after every optimizer step (holding the run state): what resumes."""
        return self.checkpoint(LAST_CHECKPOINT)

    @property
    def sft_checkpoint(self) -> Path:
        """The SFT policy: GRPO's reference, and what the study's arms start from."""
        return self.checkpoint(SFT_CHECKPOINT)

    def round_checkpoint(self, round_: int) -> Path:
        """The weights after round `round_`, kept for later evals."""
        return self.checkpoint(round_dir_name(round_))


@dataclass(frozen=True)
class StudyLayout:
    """A learning study's directory: a shared run, one run per RL arm, the arms' evals."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def state(self) -> Path:
        return self.root / STUDY_STATE

    @property
    def results(self) -> Path:
        return self.root / STUDY_JSON

    @property
    def report(self) -> Path:
        return self.root / STUDY_MD

    @property
    def curves(self) -> Path:
        return self.root / STUDY_CURVES

    @property
    def shared(self) -> RunLayout:
        """The run every arm starts from: data, base eval, SFT."""
        return RunLayout(self.root / SHARED_DIR)

    def arm(self, name: str) -> RunLayout:
        return RunLayout(self.root / ARMS_DIR / name)

    @property
    def evals(self) -> Path:
        """The fixed eval sets (`<set>_tasks.jsonl`) and each arm's evals (`<arm>/`)."""
        return self.root / EVALS_DIR

    def eval_set(self, name: str) -> Path:
        return self.evals / f"{name}_tasks.jsonl"

    def arm_evals(self, arm: str) -> Path:
        return self.evals / arm


@dataclass(frozen=True)
class EngineRoundLayout:
    """An external engine's (verl's) folder for one round: `rounds/round-<r>/verl/`."""

    dir: Path

    @property
    def train_data(self) -> Path:
        return self.dir / DATA_DIR / "train.parquet"

    @property
    def val_data(self) -> Path:
        return self.dir / DATA_DIR / "val.parquet"

    @property
    def loop_config(self) -> Path:
        return self.dir / "agent_loops.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.dir / CHECKPOINTS_DIR

    def final_model(self, steps: int) -> Path:
        """The Hugging Face weights verl saves after step `steps`."""
        return self.checkpoints / f"global_step_{steps}" / "actor" / "huggingface"

    def metrics(self, launch: int) -> Path:
        """Launch `launch`'s step metrics (a resumed round is a later launch)."""
        return self.dir / f"metrics-{launch}.jsonl"

    def metrics_files(self) -> list[Path]:
        """Every launch's metrics file, in launch order."""
        return sorted(self.dir.glob("metrics-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))

    @property
    def log(self) -> Path:
        return self.dir / "verl.log"
