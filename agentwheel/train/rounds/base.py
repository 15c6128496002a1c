"""What every RL round does, whatever it trains on, and the protocol a round kind implements.

A round, in the driver's order:

    evolve   `select_round_items`: the kind's pool, its flywheel's learnable band of new
             items (`RoundKind.evolve`), and the band when it has anything, else the pool
             (said in a note); written to the round directory with selection.json;
    grpo     `run_grpo_round`: GRPO steps over groups of rollouts of the selected items
             (`RoundKind.collect_groups`, scored by the kind's reward), each step
             checkpointed and resumable from the committed position;
    eval     the held-out eval (phases.py);
    report   `write_round_report`: report.json from the round's metrics.

A kind is one subclass of `RoundKind` with its settings model (agentwheel/settings/),
registered by its `kind:` name in registry.py.
"""

from __future__ import annotations

import json
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from agentwheel.core.atomic import write_text_atomic
from agentwheel.core.run_layout import RoundLayout
from agentwheel.core.stats import mean
from agentwheel.eval.evaluate import SUMMARY, TRACES, TraceWriter, read_traces, summarize
from agentwheel.settings.rl_round import RLRound
from agentwheel.train.checkpoint import keep_weights
from agentwheel.train.phases import KIND_PASS1
from agentwheel.train.report import read_metrics
from agentwheel.train.rollout import RolloutBatch, TaskStream, rollout_seed
from agentwheel.train.run_context import RunContext
from agentwheel.train.run_state import truncate_to_committed

S = TypeVar("S", bound=RLRound)
Item = TypeVar("Item")  # what a kind trains on: an agentic Task, a reasoning Problem, ...


@dataclass
class Band(Generic[Item]):
    """The learnable band a flywheel found (new items the current policy sometimes
    solves), with what the flywheel reported, for selection.json."""

    items: list[Item]
    report: dict[str, Any] = field(default_factory=dict)


class RoundKind(ABC, Generic[S, Item]):
    """One kind of RL round: where its items come from, how its flywheel grows them, how
    its rollouts are collected and scored. Implementations hold no state of their own
    (the run is passed in), so one instance serves every round of its kind."""

    name: ClassVar[str]  # the `kind:` value in a config
    settings: ClassVar[type[RLRound]]  # its settings model (`kind` narrowed to `name`)
    noun: ClassVar[str] = "tasks"  # what its items are called in notes

    @abstractmethod
    def pool(self, run: RunContext, round_: int, settings: S) -> list[Item]:
        """The items this round starts from (its kind's previous round's pool, or the
        kind's initial pool)."""

    @abstractmethod
    def evolve(
        self, run: RunContext, round_: int, settings: S, pool: list[Item]
    ) -> Band[Item] | None:
        """The flywheel's learnable band of new items; None when evolution is off."""

    def train_on_band(
        self, run: RunContext, round_: int, settings: S, band: list[Item], pool: list[Item]
    ) -> tuple[list[Item], str]:
        """The round's items given a non-empty band, and where they came from."""
        return band, f"learnable band of the {self.name} flywheel"

    @abstractmethod
    def write_selection(
        self, files: RoundLayout, items: list[Item], pool: list[Item], band: list[Item]
    ) -> None:
        """Save the round's items and its grown pool (what the kind's next round starts
        from) in the round directory."""

    @abstractmethod
    def selected_items(self, files: RoundLayout) -> list[Item]:
        """The round's items, as `write_selection` saved them."""

    def task_stream(
        self, run: RunContext, round_: int, settings: S, items: list[Item]
    ) -> TaskStream[Item]:
        """The order steps draw the round's items in: seeded by (run seed, round)."""
        return TaskStream(items, rollout_seed(run.config.seed, round_))

    @abstractmethod
    def collect_groups(
        self, run: RunContext, round_: int, settings: S, stream: TaskStream[Item], step: int
    ) -> RolloutBatch:
        """The groups step `step` trains on, each rollout scored by the kind's reward (the
        batch's `graded_rewards()`, or the trajectories' own when None). Seeds must be
        functions of (run seed, round, step, attempt) so a resumed run repeats the draw."""


# -- evolve: the band, or the pool said in a note


def select_round_items(
    run: RunContext, kind: RoundKind[Any, Any], round_: int, settings: Any
) -> None:
    """Pick the round's items: the kind's learnable band, or its pool as a fallback."""
    files = run.layout.round(round_)
    files.dir.mkdir(parents=True, exist_ok=True)
    run.policy.module.eval()
    pool = kind.pool(run, round_, settings)
    info: dict[str, Any] = {"pool_tasks": len(pool)}
    band = kind.evolve(run, round_, settings, pool)
    new = band.items if band is not None else []
    info.update(band.report if band is not None else {})
    if new:
        items, info["tasks_source"] = kind.train_on_band(run, round_, settings, new, pool)
    else:
        why = "evolution is off" if band is None else "the learnable band is empty"
        items, info["tasks_source"] = pool, f"fallback: the existing pool ({why})"
        run.note(f"round {round_}: {why}; training on the existing pool of {len(pool)} {kind.noun}")
    kind.write_selection(files, items, pool, new)
    info["train_tasks"] = len(items)
    write_text_atomic(files.selection, json.dumps(info, indent=2))


# -- grpo: the step loop


def run_grpo_round(run: RunContext, kind: RoundKind[Any, Any], round_: int, settings: Any) -> None:
    """GRPO steps on the round's selected items, in a stream seeded by (seed, round)."""
    stream = kind.task_stream(run, round_, settings, kind.selected_items(run.layout.round(round_)))
    grpo_steps(
        run,
        round_,
        settings,
        stream,
        lambda step: kind.collect_groups(run, round_, settings, stream, step),
    )


def grpo_steps(
    run: RunContext,
    round_: int,
    settings: RLRound,
    stream: TaskStream[Any],
    collect: Callable[[int], RolloutBatch],
) -> None:
    """`settings.steps` GRPO steps, each checkpointed with the stream position and the
    rollout lines written; resumes mid-round from the committed position."""
    trainer = run.grpo_trainer()
    files = run.layout.round(round_)
    rollouts = files.rollouts
    start = 0
    pos = run.state.position
    if pos.get("stage") == "grpo" and pos.get("round") == round_:
        start, stream.drawn = int(pos["step"]), int(pos["tasks_drawn"])
    lines = int(pos.get("rollout_lines", 0)) if start else 0
    if start == 0:
        shutil.rmtree(rollouts, ignore_errors=True)
    truncate_to_committed(rollouts / TRACES, lines)
    writer = TraceWriter(rollouts / TRACES)
    try:
        for step in range(start, settings.steps):
            run.policy.module.eval()
            batch = collect(step)
            for t in batch.trajectories:
                writer.write(t)
            lines += len(batch.trajectories)
            metrics = trainer.step(batch.groups, batch.graded_rewards())
            global_step = run.state.global_step + 1
            position = {
                "stage": "grpo",
                "round": round_,
                "step": step + 1,
                "tasks_drawn": stream.drawn,
                "rollout_lines": lines,
                "global_step": global_step,
            }
            run.state.checkpoint = {"trainer": "grpo", "step": trainer.step_count}
            run.state.position = position
            record = {
                "stage": "grpo",
                "round": round_,
                "kind": settings.kind,
                **metrics.as_dict(),
                "step": step + 1,
                "optimizer_step": metrics.step,
                "global_step": global_step,
                **batch.metrics(),
            }
            run.step_done(
                trainer, position, record, f"GRPO round {round_}", step + 1, settings.steps
            )
    finally:
        writer.close()
    summary = summarize(
        read_traces(rollouts / TRACES).done,
        1,
        meta={"tasks": str(files.tasks), "stage": f"rollouts-{round_}"},
    )
    write_text_atomic(rollouts / SUMMARY, json.dumps(summary, indent=2))
    last = run.layout.last_checkpoint
    if run.config.keep_round_checkpoints and last.exists():
        keep_weights(last, run.layout.round_checkpoint(round_))


# -- report


def write_round_report(run: RunContext, round_: int, settings: RLRound) -> None:
    """report.json: the round's steps, updates, rollout reward, and held-out pass^1
    before and after it."""
    files = run.layout.round(round_)
    metrics = read_metrics(run.dir)
    steps = [m for m in metrics if m.get("stage") == "grpo" and m["round"] == round_]
    start = "sft" if "sft" in run.state.evals else "base"  # a run from init_from has no SFT
    previous = start if round_ == 1 else f"round-{round_ - 1}"
    report = {
        "round": round_,
        "kind": settings.kind,
        "settings": settings.model_dump(),
        "selection": json.loads(files.selection.read_text()),
        "steps": len(steps),
        # An external engine's steps (rounds/external.py) may lack some of these.
        "updates": sum(1 for m in steps if m.get("updated", True)),
        "rollout_reward_mean": mean(
            [m["rollout_reward_mean"] for m in steps if "rollout_reward_mean" in m]
        ),
        "groups_dropped": sum(m.get("rollout_groups_dropped", 0) for m in steps),
        "rollout_attempts": sum(m.get("rollout_attempts", 1) for m in steps),
        "exhausted_steps": sum(1 for m in steps if m.get("rollout_exhausted")),
        "held_out_pass1_before": run.state.evals.get(previous),
        "held_out_pass1_after": run.state.evals.get(f"round-{round_}"),
        "collapse_alarm": collapse_alarm(run, metrics, round_),
    }
    write_text_atomic(files.report, json.dumps(report, indent=2))
    headline = {k: report[k] for k in ("steps", "updates", "held_out_pass1_after")}
    run.log(f"round {round_}: {json.dumps(headline)}")


def collapse_alarm(run: RunContext, metrics: list[dict[str, Any]], round_: int) -> list[str]:
    """The branch kinds whose held-out pass^1 after this round is below their level after
    SFT (or, in a run without SFT, at its start), each also said in a note: a policy that
    learns to refuse everything can raise the overall rate while happy paths collapse."""
    evals = {m["eval"]: m for m in metrics if m.get("stage") == "eval"}
    reference = "sft" if "sft" in evals else "base"
    before, after = evals.get(reference, {}), evals.get(f"round-{round_}", {})
    fallen = []
    for key, level in before.items():
        if key.startswith(KIND_PASS1) and key in after and after[key] < level:
            kind = key.removeprefix(KIND_PASS1)
            fallen.append(kind)
            note = (
                f"collapse alarm, round {round_}: held-out pass^1 of {kind} tasks fell below "
                f"its {reference} level ({level:.3f} -> {after[key]:.3f})"
            )
            if note not in run.state.notes:
                run.note(note)
    return fallen
