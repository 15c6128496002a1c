"""The learning study: does multi-round RL on flywheel data make a better agent than SFT
alone? One run directory, every phase resumable:

    shared          a schedule run (shared/): the train pool and the held-out set (every
                    branch kind in each), the base eval, SFT, the SFT eval;
    check           the held-out set is big enough and disjoint from the train pool (ids,
                    and requests with the user's facts); the sampled-eval subset and the
                    train-pool sample are fixed (evals/*_tasks.jsonl);
    arm:<rl arm>    a schedule run per RL arm (arms/rl_static, arms/rl_flywheel) from the
                    shared SFT checkpoint on the shared data, the same rounds, the flywheel
                    off or on; a checkpoint kept per round;
    evals:<arm>     per arm (refuse, base, sft, rl_static, rl_flywheel): sampled pass^4 on
                    the held-out set and greedy pass^1 on the train-pool sample (evals/<arm>/);
    results         study.json, study.md, study_curves.png (rewritten on every run).

Greedy held-out pass^1 of the model arms is the schedule's own eval of that stage
(shared/evals/{base,sft}, arms/<arm>/evals/round-<last>). An arm's run starts with its
eval of the SFT weights already on disk (copied from shared/evals/sft): the same episodes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.dataset import load_tasks
from agentwheel.core.machine import cpu_model, cpu_numeric_flags, machine_facts
from agentwheel.core.messages import SamplingParams
from agentwheel.core.run_layout import RunLayout, StudyLayout, round_dir_name
from agentwheel.core.task import Task
from agentwheel.core.yaml_text import load_yaml
from agentwheel.envs.agent import Policy
from agentwheel.eval.evaluate import EVAL_KEY, TRACES
from agentwheel.eval.stances import stance_matrix
from agentwheel.llm.half_precision import runnable_dtype
from agentwheel.settings.schedule import ScheduleConfig
from agentwheel.study.arm_evals import (
    GREEDY,
    HELD_OUT,
    SAMPLED,
    TRAIN_POOL,
    chat_model,
    eval_set,
    evaluate_arm,
    model_policy_for,
    refuse_policy_for,
    write_eval_sets,
)
from agentwheel.study.config import (
    ARMS,
    RL_ARMS,
    StudyConfig,
    arm_config,
    relocated_arm_config,
    shared_config,
)
from agentwheel.study.curves import arm_curves
from agentwheel.study.report import write_study_report
from agentwheel.study.results import (
    arm_result,
    asked_again_share,
    differences,
    failure_counts,
    goals,
    greedy_episodes,
    greedy_scores,
)
from agentwheel.train.phase_driver import Phase, PhaseProgress, run_phases
from agentwheel.train.phases import task_fingerprint, write_rl_pool
from agentwheel.train.schedule import run_schedule

# The flywheel arm trains first: it is the study's question, so a run stopped before the
# end has measured it (each arm's held-out eval comes with its run).
ARM_RUN_ORDER = ("rl_flywheel", "rl_static")


class StudyError(ValueError):
    """The data cannot answer the study's question (too few or leaked held-out tasks)."""


class StudyState(BaseModel):
    done: list[str] = Field(default_factory=list)
    wall_s: float = 0.0  # summed over every invocation that worked on the study
    shared_from: str | None = None  # the study whose shared phase was copied (--shared-from)
    # phase -> where each invocation that worked on it ran (a study crosses machines)
    ran_on: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)


class StudyRun:
    """One study in `out`; `run()` does (or, with `resume=True`, finishes) every phase."""

    def __init__(
        self,
        config: StudyConfig,
        out: Path,
        *,
        resume: bool = False,
        progress: PhaseProgress | None = None,
        log: Callable[[str], None] = print,
    ):
        self.dir = Path(out)
        self.files = StudyLayout(self.dir)
        self.progress = progress
        self.log = log
        state_path = self.files.state
        if state_path.exists() and not resume:
            raise FileExistsError(f"{state_path} exists: resume it, or pick another --out")
        self.state = (
            StudyState.model_validate_json(state_path.read_text())
            if state_path.exists()
            else StudyState()
        )
        saved = self.files.config
        if resume and saved.exists():
            config = StudyConfig.model_validate(load_yaml(saved.read_text()))
        self.config = config
        self.dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(saved, config.to_yaml())

    # -- where each arm's weights and episodes are

    def weights(self, arm: str) -> Path | None:
        """The checkpoint an arm is evaluated at (None: the initial weights)."""
        if arm in RL_ARMS:
            return self.files.arm(arm).round_checkpoint(self.config.study.rounds)
        return self.files.shared.sft_checkpoint if arm == "sft" else None

    def greedy_dir(self, arm: str) -> Path:
        """Where the arm's greedy held-out episodes are."""
        if arm in RL_ARMS:
            return self.files.arm(arm).eval_dir(round_dir_name(self.config.study.rounds))
        if arm == "refuse":
            return self.files.arm_evals(arm) / GREEDY
        return self.files.shared.eval_dir(arm)

    # -- phases

    def phases(self) -> list[Phase]:
        phases: list[Phase] = [
            ("shared", self.run_shared),
            ("check", self.check_data),
        ]
        phases += [(f"arm:{arm}", partial(self.run_arm, arm)) for arm in ARM_RUN_ORDER]
        phases += [(f"evals:{arm}", partial(self.evaluate, arm)) for arm in ARMS]
        return phases

    def run(self) -> dict[str, Any]:
        """Every phase not yet done, then the results; returns study.json's content."""
        run_phases(self.phases(), self.state.done, self._phase_ended, self.log, "study: ")
        return self.write_results()

    def _phase_ended(self, name: str, finished: bool, seconds: float) -> None:
        if finished:
            self.state.done.append(name)
        record_where_it_ran(self.state.ran_on.setdefault(name, []), self._numerics(name))
        self.state.wall_s += seconds
        write_text_atomic(self.files.state, self.state.model_dump_json(indent=2))

    def _schedule(self, config: Any, run: RunLayout) -> None:
        run_schedule(
            config,
            run.root,
            resume=run.state.exists(),
            progress=self.progress,
            log=self.log,
        )

    def run_shared(self) -> None:
        self._schedule(shared_config(self.config), self.files.shared)

    def check_data(self) -> None:
        """Enough held-out tasks, of enough unseen workflows, none of them in the train
        pool or the RL pool."""
        if self.config.data.rl_tasks_per_workflow and not self.files.shared.rl_tasks.exists():
            # A study whose shared run predates its RL pool: the arms copy it from here.
            write_rl_pool(self.files.shared, self.config.data, self.config.seed)
        held_out, pool = self._held_out(), self._train_pool()
        need = self.config.study.min_held_out_tasks
        if len(held_out) < need:
            raise StudyError(f"{len(held_out)} held-out tasks were made, fewer than {need}")
        trained_on = [*pool, *self._rl_pool()]
        leaked = {t.id for t in held_out} & {t.id for t in trained_on}
        trained = {task_fingerprint(t) for t in trained_on}
        leaked |= {t.id for t in held_out if task_fingerprint(t) in trained}
        if leaked:
            raise StudyError(f"held-out tasks also in the train or RL pool: {sorted(leaked)[:5]}")
        study = self.config.study
        write_eval_sets(
            held_out,
            pool,
            study.sampled_tasks,
            study.train_pool_tasks,
            self.config.seed,
            self.files,
        )

    def run_arm(self, arm: str) -> None:
        run = self.files.arm(arm)
        if not run.state.exists():
            # The arm's first eval is of the SFT weights on the same tasks and settings:
            # the shared run's episodes, which its resumed eval then finds done.
            start = run.eval_dir("base")
            start.mkdir(parents=True, exist_ok=True)
            for name in (TRACES, EVAL_KEY):
                shutil.copy2(self.files.shared.eval_dir("sft") / name, start / name)
        else:
            self.relocate_arm(run)
        self._schedule(arm_config(self.config, arm, self.files.shared.root), run)  # type: ignore[arg-type]

    def relocate_arm(self, run: RunLayout) -> None:
        """Point a started arm's saved config at this study's shared phase, where it
        began elsewhere (restored from a portable copy, or moved)."""
        if not run.config.exists():
            return
        saved = ScheduleConfig.model_validate(load_yaml(run.config.read_text()))
        moved = relocated_arm_config(saved, self.files.shared.root)
        if moved != saved:
            write_text_atomic(run.config, moved.to_yaml())
            self.log(
                f"note: {run.root.name} now reads the shared phase at {self.files.shared.root}"
            )

    def evaluate(self, arm: str) -> None:
        schedule = self.config.schedule()
        policy_for: Callable[[SamplingParams], Policy]
        if arm == "refuse":
            policy_for, weights = refuse_policy_for, "scripted"
        else:
            checkpoint = self.weights(arm)
            model = chat_model(schedule, checkpoint)
            policy_for, weights = model_policy_for(model, schedule.model.spec), str(checkpoint)
        evaluate_arm(
            schedule,
            policy_for,
            self.files.arm_evals(arm),
            self.files,
            weights,
            sampled_temperature=self.config.study.sampled_temperature,
            refuse=arm == "refuse",
            progress=self.progress,
        )

    # -- results

    def _held_out(self) -> list[Task]:
        return load_tasks(self.files.shared.held_out_tasks).tasks

    def _train_pool(self) -> list[Task]:
        return load_tasks(self.files.shared.train_tasks).tasks

    def _rl_pool(self) -> list[Task]:
        """The RL arms' own pool (`data.rl_tasks_per_workflow`); none: they use the train pool."""
        if not self.config.data.rl_tasks_per_workflow:
            return []
        return load_tasks(self.files.shared.rl_tasks).tasks

    def write_results(self) -> dict[str, Any]:
        """study.json (and its copy's content, returned), study.md and the curves."""
        study, seed = self.config.study, self.config.seed
        held_out = eval_set(self.files, HELD_OUT)
        unseen = set(self.config.data.held_out_workflows)
        episodes = {arm: greedy_episodes(self.greedy_dir(arm), held_out) for arm in ARMS}
        scores = {arm: greedy_scores(episodes[arm]) for arm in ARMS}
        arms = {
            arm: arm_result(
                scores[arm],
                held_out,
                unseen,
                self.files.arm_evals(arm) / SAMPLED,
                self.files.arm_evals(arm) / TRAIN_POOL,
                study.bootstrap_resamples,
                seed,
            )
            for arm in ARMS
        }
        for arm in ARMS:
            arms[arm]["weights"] = str(
                self.weights(arm) or ("scripted" if arm == "refuse" else "initial")
            )
            arms[arm]["asked_again"] = asked_again_share(episodes[arm])
            arms[arm]["failure_reasons"] = failure_counts(episodes[arm])
            arms[arm]["stances"] = stance_matrix(episodes[arm].values())
        diff = differences(scores, study.bootstrap_resamples, seed)
        result = {
            "machine": machine_facts(),
            "held_out_tasks": len(held_out),
            "held_out_unseen_workflows": sorted(unseen),
            "held_out_unseen_tasks": sum(
                1 for t in held_out if t.lineage.source_workflow in unseen
            ),
            "train_pool_tasks": len(self._train_pool()),
            "rl_pool_tasks": len(self._rl_pool()),
            "wall_s": round(self.state.wall_s, 1),
            "shared_from": self.state.shared_from,
            "ran_on": self.state.ran_on,
            "mixed_numerics": mixed_numerics(self.state.ran_on, self.state.done),
            "config": self.config.name,
            "model": self.config.model.spec,
            "rl_budget": {
                "rounds": study.rounds,
                "steps_per_round": study.round.steps,
                "groups_per_step": study.round.batch_groups,
                "rollouts_per_group": study.round.group_size,
                "balance_kinds": study.round.balance_kinds,
            },
            "arms": arms,
            "diff": diff,
            "goal": goals(arms, diff, study.goal_margin),
            "curves": {arm: arm_curves(self.files.arm(arm).root) for arm in RL_ARMS},
            "notes": {arm: self._notes(arm) for arm in RL_ARMS},
        }
        write_text_atomic(self.files.results, json.dumps(result, indent=2))
        write_study_report(self.files, result, plots=self.config.plots)
        return result

    def _numerics(self, phase: str) -> dict[str, str]:
        """The dtypes a phase computed in here (a half dtype falls back to float32 on a
        CPU that would only emulate it)."""
        model = self.config.model
        engine = model.generation
        generation = model.dtype if engine.backend == "shared" else engine.dtype
        numerics = {"generation": runnable_dtype(generation, model.device)}
        if phase == "shared":
            numerics["training"] = runnable_dtype(self.config.sft.train.compute_dtype, model.device)
        elif phase.startswith("arm:"):
            numerics["training"] = runnable_dtype(self.config.grpo.compute_dtype, model.device)
        return numerics

    def _notes(self, arm: str) -> list[str]:
        path = self.files.arm(arm).state
        return list(json.loads(path.read_text()).get("notes", [])) if path.exists() else []


def record_where_it_ran(records: list[dict[str, Any]], numerics: dict[str, str]) -> None:
    """Add this machine and the phase's numerics to `records`, unless the last one is the
    same machine computing the same way."""
    here = {"cpu": cpu_model(), "cpu_flags": cpu_numeric_flags(), "numerics": numerics}
    if not records or {k: records[-1].get(k) for k in here} != here:
        records.append({**here, "when": datetime.now(UTC).isoformat(timespec="seconds")})


def mixed_numerics(ran_on: dict[str, list[dict[str, Any]]], done: list[str]) -> bool | None:
    """Whether the phases generated, or trained, in more than one dtype: their results
    then differ by more than the training draw (greedy decoding follows the rounding).
    None where they agree but a finished phase has no record (it ran before they were
    kept)."""
    seen: dict[str, set[str]] = {}
    for records in ran_on.values():
        for record in records:
            for role, dtype in record["numerics"].items():
                seen.setdefault(role, set()).add(dtype)
    if any(len(dtypes) > 1 for dtypes in seen.values()):
        return True
    return None if any(phase not in ran_on for phase in done) else False


def run_study(
    config: StudyConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: PhaseProgress | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) the study in `out`; see the module docstring for the phases."""
    return StudyRun(config, Path(out), resume=resume, progress=progress, log=log).run()
