"""The phases around the RL rounds: data (train pool and held-out set), held-out eval, and
the SFT warm start. Each is a function of the run; the driver (schedule.py) orders them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.dataset import load_tasks, write_tasks
from agentwheel.core.run_layout import (
    HELD_OUT_SPLIT,
    RL_SPLIT,
    TASKS_FILE,
    TRAIN_SPLIT,
    RunLayout,
    split_tasks,
)
from agentwheel.core.task import Task
from agentwheel.envs.agent import ModelPolicy
from agentwheel.envs.user import ScriptedUser
from agentwheel.eval.evaluate import TRACES, read_traces, run_eval
from agentwheel.flywheels.agentic.synth import synth_agentic
from agentwheel.flywheels.agentic.workflow import Workflow
from agentwheel.flywheels.agentic.workflow_loader import load_workflow, workflow_paths
from agentwheel.settings.data import DataSettings
from agentwheel.train.model import is_lora
from agentwheel.train.run_context import RunContext
from agentwheel.train.sft import SFTTrainer
from agentwheel.train.sft_data import oracle_sft_data

# -- data


def _workflows_by_id(data: DataSettings) -> dict[str, Workflow]:
    """Every workflow of `data.workflows_dir`; an id the config names that is not there is
    an error that lists the known."""
    by_id = {w.id: w for w in map(load_workflow, workflow_paths(data.workflows_dir))}
    named = data.held_out_workflows + (data.train_workflows or []) + data.rl_workflows
    missing = sorted(set(named) - set(by_id))
    if missing:
        raise ValueError(f"unknown workflow ids: {missing}; known: {sorted(by_id)}")
    return by_id


def split_workflows(data: DataSettings) -> tuple[list[Workflow], list[Workflow]]:
    """(train workflows, held-out workflows): SFT's and the held-out set's. With no
    `train_workflows`, every workflow neither held out nor RL-only."""
    by_id = _workflows_by_id(data)
    return _train_workflows(data, by_id), [by_id[w] for w in data.held_out_workflows]


def _train_workflows(data: DataSettings, by_id: dict[str, Workflow]) -> list[Workflow]:
    not_train = set(data.held_out_workflows) | set(data.rl_workflows)
    return [by_id[w] for w in data.train_workflows or [w for w in by_id if w not in not_train]]


def rl_workflows(data: DataSettings) -> list[Workflow]:
    """The workflows RL trains on: the train workflows and `data.rl_workflows` (RL only)."""
    by_id = _workflows_by_id(data)
    return [*_train_workflows(data, by_id), *(by_id[w] for w in data.rl_workflows)]


def rl_workflow_paths(data: DataSettings) -> list[Path]:
    """The YAML files of the workflows RL trains on (what the agentic flywheel evolves from)."""
    ids = {w.id for w in rl_workflows(data)}
    return [p for p in workflow_paths(data.workflows_dir) if load_workflow(p).id in ids]


class MissingBranchKinds(ValueError):
    """The train pool or the held-out set lacks a branch kind the config requires."""


def phase_data(run: RunContext) -> None:
    """The train pool (train workflows) and the held-out set (held-out workflows, plus new
    tasks of the train workflows when `held_out_seen_tasks` asks for them), or both copied
    from `data.reuse_from`; then the branch kinds `data.require_branch_kinds` asks for are
    checked in each."""
    if run.config.data.reuse_from is not None:
        _reuse_data(run, Path(run.config.data.reuse_from))
    else:
        _synthesize_data(run)
    splits = [("train pool", run.layout.train_tasks), ("held-out set", run.layout.held_out_tasks)]
    if run.config.data.rl_tasks_per_workflow:
        if run.layout.rl_tasks.exists():
            _check_rl_pool_workflows(run.layout.rl_tasks, run.config.data)
        else:
            kept = write_rl_pool(run.layout, run.config.data, run.config.seed)
            run.log(f"data: {kept} RL-pool tasks (new tasks SFT never saw)")
        splits.append(("RL pool", run.layout.rl_tasks))
    required = run.config.data.require_branch_kinds
    for name, path in splits:
        present = {t.branch_kind for t in load_tasks(path).tasks}
        missing = [k for k in required if k not in present]
        if missing:
            raise MissingBranchKinds(
                f"the {name} has no {', '.join(missing)} tasks (it has {sorted(present)}): "
                "raise data.tasks_per_workflow / data.held_out_tasks (synthesis spreads a "
                "workflow's tasks over the five kinds) or drop them from "
                "data.require_branch_kinds"
            )


def _reuse_data(run: RunContext, source: Path) -> None:
    """The train pool and held-out set of another run, copied as they are; its RL pool
    too when this run asks for one and the other run has it."""
    splits = [TRAIN_SPLIT, HELD_OUT_SPLIT]
    if run.config.data.rl_tasks_per_workflow and split_tasks(source, RL_SPLIT).exists():
        splits.append(RL_SPLIT)
    for split in splits:
        tasks = load_tasks(split_tasks(source, split)).tasks
        if not tasks:
            raise ValueError(f"no tasks in {split_tasks(source, split)} (data.reuse_from)")
        write_tasks(tasks, split_tasks(run.layout.data, split))
    run.log(f"data: reused from {source}")


def _synthesize_data(run: RunContext) -> None:
    data, seed = run.config.data, run.config.seed
    train, held = split_workflows(data)
    synth_agentic(
        run.layout.train_data,
        train,
        seed=seed,
        tasks_per_workflow=data.tasks_per_workflow,
        extra_conditions=data.extra_conditions,
    )
    held_dir = run.layout.held_out_synth
    # A different seed: held-out trees come from other workflows anyway, but their
    # sampled branches should not mirror the pool's.
    synth_agentic(held_dir, held, seed=seed + 7919, tasks_per_workflow=data.held_out_tasks)
    tasks = load_tasks(held_dir / TASKS_FILE).tasks
    order = np.random.default_rng([seed, 1]).permutation(len(tasks))
    chosen = [tasks[int(i)] for i in order[: data.held_out_tasks]]
    pool = _with_extra_tasks(run, load_tasks(run.layout.train_tasks).tasks)
    seen = _held_out_seen(run, train, pool) if data.held_out_seen_tasks else []
    write_tasks([*chosen, *seen], run.layout.held_out_tasks)
    if not pool or not chosen:
        raise ValueError(f"empty data: {len(pool)} train tasks, {len(chosen)} held-out tasks")
    run.log(
        f"data: {len(pool)} train-pool tasks; held out: {len(chosen)} tasks of unseen "
        f"workflows, {len(seen)} new tasks of the train workflows"
    )


def _with_extra_tasks(run: RunContext, pool: list[Task]) -> list[Task]:
    """The synthesized pool plus `data.extra_train_tasks` (written back as the pool)."""
    extra = [t for spec in run.config.data.extra_train_tasks for t in _task_set(spec)]
    if extra:
        pool = [*pool, *extra]
        write_tasks(pool, run.layout.train_tasks)
    return pool


def _task_set(spec: str) -> list[Task]:
    loaded = load_tasks(spec)
    if loaded.errors or not loaded.tasks:
        raise ValueError(
            f"data.extra_train_tasks {spec!r}: {len(loaded.tasks)} tasks, "
            f"{len(loaded.errors)} unreadable lines"
        )
    return loaded.tasks


def _held_out_seen(run: RunContext, train: list[Workflow], pool: list[Task]) -> list[Task]:
    """New tasks of the train workflows: synthesized with another seed, and dropped
    when their request or user facts match any train-pool task's."""
    n, seed = run.config.data.held_out_seen_tasks, run.config.seed
    out = run.layout.held_out_seen_synth
    per_workflow = -(-n // len(train)) + 1
    synth_agentic(out, train, seed=seed + 104_729, tasks_per_workflow=per_workflow)
    trained = {task_fingerprint(t) for t in pool}
    fresh = [t for t in load_tasks(out / TASKS_FILE).tasks if task_fingerprint(t) not in trained]
    order = np.random.default_rng([seed, 2]).permutation(len(fresh))
    return [
        fresh[int(i)].model_copy(update={"id": f"heldout.{fresh[int(i)].id}"}) for i in order[:n]
    ]


def write_rl_pool(layout: RunLayout, data: DataSettings, seed: int) -> int:
    """The RL pool (`data.rl_tasks_per_workflow`): new tasks of the train workflows and of
    `data.rl_workflows`, synthesized with another seed, without any whose request and user
    facts match a train-pool or held-out task's, so RL meets tasks SFT never imitated and
    the held-out set stays unseen. Returns how many were kept."""
    synth_agentic(
        layout.rl_synth,
        rl_workflows(data),
        seed=seed + 15_485_863,
        tasks_per_workflow=data.rl_tasks_per_workflow,
        extra_conditions=data.extra_conditions,
    )
    taken = {
        task_fingerprint(t)
        for path in (layout.train_tasks, layout.held_out_tasks)
        for t in load_tasks(path).tasks
    }
    fresh = [
        t.model_copy(update={"id": f"rl.{t.id}"})
        for t in load_tasks(layout.rl_synth / TASKS_FILE).tasks
        if task_fingerprint(t) not in taken
    ]
    if not fresh:
        raise ValueError("data.rl_tasks_per_workflow: every synthesized RL task was a leak")
    write_tasks(fresh, layout.rl_tasks)
    return len(fresh)


def _check_rl_pool_workflows(path: Path, data: DataSettings) -> None:
    """A reused RL pool must come from the workflows this run's RL trains on and hold
    every RL-only one (a train workflow may have lost its few tasks to the leak filter)."""
    have = {t.lineage.source_workflow for t in load_tasks(path).tasks}
    want = {w.id for w in rl_workflows(data)}
    if have - want or set(data.rl_workflows) - have:
        raise ValueError(
            f"the reused RL pool ({path}) comes from workflows {sorted(have)}, this run's RL "
            f"trains on {sorted(want)} (data.train_workflows + data.rl_workflows): reuse a run "
            "with the same workflows, or drop data.reuse_from"
        )


def rl_start_pool(layout: RunLayout, data: DataSettings) -> Path:
    """The tasks the first agentic round draws from: the RL pool when the run has one
    (`data.rl_tasks_per_workflow`), else the train pool that SFT imitated."""
    return layout.rl_tasks if data.rl_tasks_per_workflow else layout.train_tasks


def task_fingerprint(task: Task) -> str:
    """What makes two tasks the same test for a model: the request and the user's facts."""
    facts = sorted(f"{k}={v}" for k, v in task.user.known_facts.items())
    return "\x1f".join([task.user.request, *facts])


# -- evaluation

KIND_PASS1 = "held_out_pass1_kind_"  # + a branch kind: a metrics key of an eval line


def phase_eval(run: RunContext, name: str, round_: int) -> float:
    """Held-out pass^k of the current policy, recorded as an `eval` metrics line."""
    run.policy.module.eval()
    out = run.layout.eval_dir(name)
    tasks = load_tasks(run.layout.held_out_tasks).tasks
    summary = run_eval(
        tasks,
        _eval_policy(run),
        ScriptedUser(),
        run.config.eval.k,
        out,
        run.runner_config,
        resume=True,
        meta={"tasks": str(run.layout.held_out_tasks), "stage": name},
    )
    pass1 = float(summary["pass_hat_k"]["1"])
    run.state.evals[name] = pass1
    unseen = {w.id for w in split_workflows(run.config.data)[1]}
    split = _pass1_by_workflow_split(out / TRACES, tasks, unseen)
    by_kind = {
        f"{KIND_PASS1}{kind}": float(part["pass_hat_k"]["1"])
        for kind, part in summary["by_branch_kind"].items()
    }
    run.record(
        {
            "stage": "eval",
            "eval": name,
            "round": round_,
            "step": run.state.global_step,
            "held_out_pass1": pass1,
            "held_out_tasks": summary["n_tasks"],
            **split,
            **by_kind,
            "mean_generated_tokens": summary["mean_generated_tokens"],
            "invalid_tool_calls": sum(summary["invalid_tool_calls"].values()),
        },
        run.state.global_step,
    )
    run.log(f"eval {name}: held-out pass^1 = {pass1:.3f} ({summary['n_tasks']} tasks)")
    return pass1


def _eval_policy(run: RunContext) -> ModelPolicy:
    params = run.config.eval.sampling(run.config.seed)
    return ModelPolicy(run.policy.chat_model(), params, name=run.config.model.spec)


def _pass1_by_workflow_split(
    traces: Path, tasks: Sequence[Task], unseen_workflows: set[str]
) -> dict[str, float | None]:
    """pass^1 on the held-out tasks of unseen workflows and on the new tasks of the
    train workflows (None for a part with no tasks)."""
    unseen = {t.id for t in tasks if t.lineage.source_workflow in unseen_workflows}
    outcomes: dict[str, list[bool]] = {"unseen": [], "seen": []}
    for t in read_traces(traces).done:
        outcomes["unseen" if t.task_id in unseen else "seen"].append(t.passed)
    return {
        f"held_out_pass1_{part}_workflows": (sum(v) / len(v) if v else None)
        for part, v in outcomes.items()
    }


# -- SFT warm start


def count_kinds(pool: Sequence[Task], task_ids: Sequence[str]) -> dict[str, int]:
    """Training sequences per branch kind."""
    kind_of = {t.id: t.branch_kind for t in pool}
    counts: dict[str, int] = {}
    for task_id in task_ids:
        counts[kind_of[task_id]] = counts.get(kind_of[task_id], 0) + 1
    return counts


def phase_sft(run: RunContext) -> None:
    """SFT on oracle episodes of the train pool, checkpointed (and resumable) every step;
    LoRA adapters are merged into the base afterwards."""
    cfg = run.config.sft
    trainer = SFTTrainer(run.policy.module, cfg.train, pad_id=run.policy.pad_id)
    pool = load_tasks(run.layout.train_tasks).tasks
    if cfg.max_tasks is not None:
        pool = pool[: cfg.max_tasks]
    # The oracle gets the default turn limit: the policy's may be too short for it.
    data = oracle_sft_data(
        pool, run.policy.renderer, cfg.train.max_seq_len, cfg.trials, kind_repeats=cfg.kind_repeats
    )
    manifest = {
        "sequences": len(data.sequences),
        "rejected": data.rejected,
        "by_branch_kind": count_kinds(pool, data.task_ids),
        "trained_tokens": sum(s.num_trained_tokens for s in data.sequences),
        "mean_length": sum(len(s) for s in data.sequences) / max(1, len(data.sequences)),
    }
    write_text_atomic(run.layout.sft_manifest, json.dumps(manifest, indent=2))
    if run.state.checkpoint.get("trainer") == "sft":
        trainer.load(run.layout.last_checkpoint)
        run.log(f"resumed SFT at step {trainer.step_count}")
    batches = -(-len(data.sequences) // cfg.train.batch_size) * cfg.train.epochs
    total = min(batches, cfg.max_steps) if cfg.max_steps is not None else batches

    def on_step(metrics: Any) -> None:
        global_step = run.state.global_step + 1
        position = {"epoch": trainer.epoch, "batch_in_epoch": trainer.batch_in_epoch}
        run.state.checkpoint = {"trainer": "sft", "step": trainer.step_count}
        run.state.position = {
            "stage": "sft",
            "round": 0,
            "step": metrics.step,
            "global_step": global_step,
        }
        record = {"stage": "sft", "round": 0, **metrics.as_dict(), "global_step": global_step}
        run.step_done(trainer, position, record, "SFT", metrics.step, total)

    # SFTTrainer.train advances batch_in_epoch before calling on_step, so the
    # checkpoint holds the position after this batch.
    trainer.train(data.sequences, max_steps=cfg.max_steps, on_step=on_step)
    run.checkpoint(
        trainer, "sft", {"epoch": trainer.epoch, "batch_in_epoch": trainer.batch_in_epoch}
    )
    run.state.checkpoint = {"trainer": "sft_done"}
    if is_lora(trainer.model):
        # GRPO trains its own adapters on the SFT policy: fold these into the base.
        run.policy.module = trainer.model.merge_and_unload()  # type: ignore[operator]
    run.log(f"SFT: {trainer.step_count} steps on {len(data.sequences)} oracle sequences")
