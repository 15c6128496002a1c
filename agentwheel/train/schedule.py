"""The multi-round training schedule: base eval → SFT warm start → rounds of RL, resumable.

A run, all under one run directory:

    data        synthesize the train pool (train workflows) and the held-out set
                (held-out workflows, never trained on);
    eval:base   held-out pass^k of the starting policy;
    sft         warm start on oracle episodes of the train pool;
    eval:sft
    round r     evolve: the round's kind picks its items: its flywheel's learnable band
                (agentic: new tasks from the latest rollouts, topped up from the pool;
                reasoning: new problems from the last reasoning round's pool, the seeds in
                the first), or its pool when the band is empty, said in a note;
                grpo: GRPO steps with dynamic sampling; eval: held-out eval;
                report: the round report. Kinds may alternate, as in the paper.
    report      plots and report.md.

Rollouts, flywheel probes and evals generate through a `Generator` (generation.py): the
trained weights themselves, or a separate engine (a bf16 transformers copy, vLLM) that
every checkpointed step marks stale and the next use refreshes.

Every finished phase is recorded in `state.json`; a checkpoint (`checkpoints/last`) is
written after every optimizer step, with the stage/round/step position and the task-stream
position, and `state.json` is updated after it. `resume=True` skips finished phases and
continues a training phase from its last checkpoint; rollout seeds and task order are
functions of (seed, round, step, attempt), so the resumed run repeats the uninterrupted one.

The run directory's layout: core/run_layout.py (config.yaml, state.json, metrics.jsonl,
data/, sft/, evals/<name>/, rounds/round-<r>/, checkpoints/{sft,last,round-<r>}, ...).

With an external trainer (`trainer.backend: verl`), a round's grpo phase runs on that
engine instead (rounds/external.py): it gets the round's tasks and the current policy and
returns the weights after the round; evolve, eval, checkpoints and report stay ours.

A run may start from another run's data and weights (`data.reuse_from`,
`model.init_from`, with `sft.enabled: false`): the learning study (agentwheel/study/)
runs its RL arms so, from one SFT checkpoint.

Where things are: the config (agentwheel/settings/schedule.py), the run directory's names
(core/run_layout.py), the run's committed record (run_ledger.py, run_state.py,
metrics_log.py), the policy and its trainers (policy.py), what phases get (run_context.py),
the data/eval/SFT phases (phases.py), the rounds (rounds/).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from agentwheel.core.external_training import ExternalTrainer
from agentwheel.settings.schedule import ScheduleConfig
from agentwheel.train.phase_driver import Phase, PhaseProgress, run_phases
from agentwheel.train.phases import phase_data, phase_eval, phase_sft
from agentwheel.train.report import write_report
from agentwheel.train.rounds.base import run_grpo_round, select_round_items, write_round_report
from agentwheel.train.rounds.external import run_external_round
from agentwheel.train.rounds.registry import round_kind
from agentwheel.train.run_context import RunContext
from agentwheel.train.run_ledger import StepHook
from agentwheel.train.run_state import RunState


class ScheduleRun(RunContext):
    """One run of a schedule in `run_dir`. `run()` does (or finishes) every phase.

    `external` runs the rounds' RL steps when the config's `trainer.backend` is not
    `builtin` (the CLI builds it: agentwheel/integrations/verl/schedule_trainer.py)."""

    def __init__(
        self,
        config: ScheduleConfig,
        run_dir: Path,
        external: ExternalTrainer | None = None,
        **kw: Any,
    ):
        backend = config.trainer.backend
        if backend != "builtin" and (external is None or external.name != backend):
            got = "none" if external is None else external.name
            raise ValueError(
                f"trainer.backend is {backend} but the external trainer given is {got}"
            )
        super().__init__(config, run_dir, **kw)
        self.external = external if backend != "builtin" else None

    def phases(self) -> list[Phase]:
        """The recipe, in order; a phase's name is what `state.json` records as done."""
        phases: list[Phase] = [
            ("data", partial(phase_data, self)),
            ("eval:base", partial(phase_eval, self, "base", 0)),
        ]
        if self.config.sft.enabled:
            phases += [
                ("sft", partial(phase_sft, self)),
                ("eval:sft", partial(phase_eval, self, "sft", 0)),
            ]
        for r, settings in enumerate(self.config.rounds, start=1):
            kind = round_kind(settings.kind)
            phases += [
                (f"round-{r}:evolve", partial(select_round_items, self, kind, r, settings)),
                (f"round-{r}:grpo", self._rl_steps(kind, r, settings)),
                (f"round-{r}:eval", partial(phase_eval, self, f"round-{r}", r)),
                (f"round-{r}:report", partial(write_round_report, self, r, settings)),
            ]
        phases.append(("report", partial(write_report, self.dir, self.config.plots)))
        return phases

    def _rl_steps(self, kind: Any, round_: int, settings: Any) -> Callable[[], Any]:
        if self.external is not None:
            return partial(run_external_round, self, self.external, round_, settings)
        return partial(run_grpo_round, self, kind, round_, settings)

    def _phase_ended(self, name: str, finished: bool, seconds: float) -> None:
        if finished:
            self.finish(name)

    def run(self) -> RunState:
        """Every phase not yet done, in order; returns the final state."""
        started = time.perf_counter()
        try:
            run_phases(self.phases(), self.state.done, self._phase_ended, self.log)
        finally:
            self.metrics.close()
        self.log(f"run finished in {time.perf_counter() - started:.1f}s: {self.dir}")
        return self.state


def run_schedule(
    config: ScheduleConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    on_step: StepHook | None = None,
    progress: PhaseProgress | None = None,
    log: Callable[[str], None] = print,
    external: ExternalTrainer | None = None,
) -> RunState:
    """Run (or resume) a schedule in `run_dir`; see the module docstring for the phases."""
    return ScheduleRun(
        config,
        Path(run_dir),
        external,
        resume=resume,
        on_step=on_step,
        progress=progress,
        log=log,
    ).run()
