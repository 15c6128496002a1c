"""A round-0 eval report of a hasty refuser, and evolve rounds from it (flywheel tests).

The hasty refuser makes the lookups a refusal needs, with identifiers it never asked for,
then declines: it passes plain refusals and fails those nested below a missing identifier
(which need a question first) and every other branch kind."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agentwheel.core.dataset import load_tasks
from agentwheel.core.run_layout import TASKS_FILE
from agentwheel.envs.scripted import CautiousPolicy
from agentwheel.envs.user import ScriptedUser
from agentwheel.eval.evaluate import run_eval
from agentwheel.flywheels.agentic.evolve import EvolveManifest, evolve_agentic
from agentwheel.flywheels.agentic.synth import synth_agentic
from agentwheel.settings.runner import RunnerConfig


class HastyRefusal(CautiousPolicy):
    name = "hasty"

    def act(self, views):
        for view in views:
            view.scratch["asked"] = True
        return super().act(views)


def refuse_report(tmp_path: Path, workflows: Sequence[str], tasks_per_workflow: int = 10) -> Path:
    """Synthesize `round0/` from `workflows`, evaluate it with the hasty refuser in `eval0/`."""
    synth_agentic(tmp_path / "round0", list(workflows), tasks_per_workflow=tasks_per_workflow)
    run_eval(
        load_tasks(tmp_path / "round0" / TASKS_FILE).tasks,
        HastyRefusal(),
        ScriptedUser(),
        1,
        tmp_path / "eval0",
        RunnerConfig(),
        meta={"tasks": str(tmp_path / "round0" / TASKS_FILE)},
    )
    return tmp_path / "eval0"


def evolve_refused(report: Path, out: Path, operators: Sequence[str]) -> EvolveManifest:
    """One evolve round from `report` with the hasty refuser, no band, 10 tasks per tree."""
    return evolve_agentic(
        report,
        HastyRefusal(),
        out,
        samples=1,
        tasks_per_workflow=10,
        use_band=False,
        workflows="agentwheel/data/workflows",
        operators=operators,
    )
