"""Start a study from another study's shared phase: its data, base and SFT evals, SFT
checkpoint and yardstick evals are copied, so a change to the RL settings is measured
against the same SFT arm, on the same held-out tasks, without redoing any of it.

Only settings the shared phase never reads may differ (`ARM_ONLY`); anything else would
make the copied phase a different experiment's, so it is an error that names the keys.
A different RL pool (`data.rl_*`) is made anew by the study's check. The copied
episodes are judged again under today's reward (agentwheel/eval/rejudge.py), so a study
started after a change to the reward's rules compares its arms with yardsticks and an
SFT arm scored by the same rules.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.changed_keys import changed_keys
from agentwheel.core.dataset import load_tasks
from agentwheel.core.run_layout import HELD_OUT_SPLIT, TRACES, StudyLayout, split_tasks
from agentwheel.core.task import Task
from agentwheel.core.yaml_text import load_yaml
from agentwheel.eval.rejudge import Rejudged, rejudge_eval
from agentwheel.study.arm_evals import HELD_OUT, SAMPLED, TRAIN_POOL
from agentwheel.study.config import StudyConfig
from agentwheel.study.portable import PORTABLE_MANIFEST
from agentwheel.study.run import StudyState

# Dotted keys read only by the RL arms, the report or logging, never by the shared phase
# or the yardstick evals.
ARM_ONLY = frozenset(
    {
        "name",
        "grpo",
        "rollout",
        "plots",
        "tensorboard",
        "wandb_project",
        "keep_round_checkpoints",
        "data.rl_tasks_per_workflow",
        "data.rl_workflows",
        "study.rounds",
        "study.round",
        "study.rl_seed",
        "study.goal_margin",
        "study.bootstrap_resamples",
    }
)
# The yardstick arms whose evals do not depend on the RL settings.
SHARED_ARMS = ("refuse", "base", "sft")
# The study's fixed eval sets (`evals/<name>_tasks.jsonl`).
EVAL_SETS = (HELD_OUT, SAMPLED, TRAIN_POOL)


@dataclass(frozen=True)
class SharedCopy:
    done: list[str]  # the study phases marked done
    rejudged: dict[str, Rejudged] = field(default_factory=dict)  # by eval dir, relative


class SharedFromError(ValueError):
    """The source cannot lend its shared phase to this study."""


def shared_differences(source: StudyConfig, config: StudyConfig) -> list[str]:
    """Dotted keys, outside `ARM_ONLY`, whose values differ between the two configs."""
    changed = changed_keys(source.model_dump(), config.model_dump())
    return [key for key in changed if not _arm_only(key)]


def _arm_only(key: str) -> bool:
    parts = key.split(".")
    return any(".".join(parts[:n]) in ARM_ONLY for n in range(1, len(parts) + 1))


def start_from_shared(source_dir: Path, out: Path, config: StudyConfig) -> SharedCopy:
    """Copy `source_dir`'s finished shared phase (and the yardstick evals it has) into the
    new study `out` and judge its episodes again under today's reward. `out` must not
    hold a study."""
    source, target = StudyLayout(Path(source_dir)), StudyLayout(Path(out))
    source_config, source_state = _finished_shared(source)
    source_done = source_state.done
    differ = shared_differences(source_config, config)
    if differ:
        raise SharedFromError(
            f"{source.root}'s shared phase was made with other settings: {', '.join(differ)} "
            "differ (only the RL settings may: grpo, rollout, study.round(s), data.rl_*)"
        )
    if target.state.exists() or target.shared.root.exists():
        raise SharedFromError(f"{target.root} already holds a study: pick another --out")
    done = ["shared"]
    shutil.copytree(source.shared.root, target.shared.root)
    if _rl_pool_settings(source_config) != _rl_pool_settings(config):
        # The study's check makes this study's RL pool.
        shutil.rmtree(target.shared.rl_tasks.parent, ignore_errors=True)
    for arm in SHARED_ARMS:
        if f"evals:{arm}" in source_done and source.arm_evals(arm).is_dir():
            shutil.copytree(source.arm_evals(arm), target.arm_evals(arm))
            done.append(f"evals:{arm}")
    rejudged = _rejudge_copied(source, target)
    ran_on = {phase: source_state.ran_on[phase] for phase in done if phase in source_state.ran_on}
    state = StudyState(done=done, shared_from=str(source.root.resolve()), ran_on=ran_on)
    write_text_atomic(target.state, state.model_dump_json(indent=2))
    return SharedCopy(done=done, rejudged=rejudged)


def _rejudge_copied(source: StudyLayout, target: StudyLayout) -> dict[str, Rejudged]:
    sets = [split_tasks(source.shared.data, HELD_OUT_SPLIT), *map(source.eval_set, EVAL_SETS)]
    tasks: dict[str, Task] = {}
    for path in filter(Path.is_file, sets):
        tasks.update((t.id, t) for t in load_tasks(path).tasks)
    copied = [target.shared.evals, *(target.arm_evals(arm) for arm in SHARED_ARMS)]
    dirs = sorted(p.parent for root in copied if root.is_dir() for p in root.rglob(TRACES))
    return {str(d.relative_to(target.root)): rejudge_eval(d, tasks) for d in dirs}


def _rl_pool_settings(config: StudyConfig) -> tuple[int, list[str]]:
    return config.data.rl_tasks_per_workflow, config.data.rl_workflows


def _finished_shared(source: StudyLayout) -> tuple[StudyConfig, StudyState]:
    """The source's config and its state, once its shared phase is done."""
    if (source.root / PORTABLE_MANIFEST).exists():
        raise SharedFromError(
            f"{source.root} is a portable copy (adapters, no weights): restore it first "
            "(agentwheel study --restore-from it --out DIR), then --shared-from DIR"
        )
    if not source.state.exists() or not source.config.exists():
        raise SharedFromError(f"{source.root} holds no study")
    state = StudyState.model_validate_json(source.state.read_text())
    if "shared" not in state.done:
        raise SharedFromError(f"{source.root}'s shared phase has not finished")
    return StudyConfig.model_validate(load_yaml(source.config.read_text())), state
