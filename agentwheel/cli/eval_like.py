"""What `agentwheel eval` runs with: each setting from its flag when given, else from the
held-out evals of the run named by `--like` (its saved config.yaml), else from a
schedule's defaults (agentwheel/settings/). So a checkpoint evaluated by hand is measured
as its run measured it, and the defaults have one home."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agentwheel.cli.config_file import checked_config
from agentwheel.cli.errors import UserError
from agentwheel.core.messages import SamplingParams
from agentwheel.core.run_layout import RunLayout
from agentwheel.settings.model import ModelSettings
from agentwheel.settings.runner import Backend, RunnerConfig, RunnerSettings
from agentwheel.settings.sampling import SAMPLED_EVAL_TEMPERATURE, EvalSettings
from agentwheel.settings.schedule import ScheduleConfig
from agentwheel.specs import LocalModelOptions

DEFAULT_TASKS = "fixtures"

DEFAULT_SEED: int = ScheduleConfig.model_fields["seed"].default


@dataclass(frozen=True)
class EvalChoices:
    tasks: str
    k: int
    params: SamplingParams
    runner: RunnerConfig
    dtype: str
    local: LocalModelOptions


@dataclass(frozen=True)
class EvalFlags:
    """The flags given on the command line (None: not given)."""

    tasks: str | None = None
    k: int | None = None
    temperature: float | None = None
    max_new_tokens: int | None = None
    max_turns: int | None = None
    max_episode_tokens: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    dtype: str | None = None
    backend: Backend | Literal["auto"] = "auto"


def run_config(run_dir: Path) -> ScheduleConfig:
    """The config a training run (or a learning study) saved in its directory."""
    path = RunLayout(run_dir).config
    if not path.is_file():
        raise UserError(
            f"--like {run_dir}: no {path.name} there: pass the directory of a training "
            "run (agentwheel train --out) or of a study"
        )
    return checked_config(path)[1]


def eval_choices(flags: EvalFlags, like: Path | None) -> EvalChoices:
    """Each setting from its flag, else from the `--like` run's held-out eval, else the
    defaults."""
    run = run_config(like) if like is not None else None
    evals = run.eval if run else EvalSettings()
    runner = run.runner if run else RunnerSettings()
    model = run.model if run else ModelSettings()
    k = _first(flags.k, evals.k)
    if run is None and k > 1:  # greedy trials of one task would all be the same
        evals = evals.model_copy(update={"temperature": SAMPLED_EVAL_TEMPERATURE})
    params = evals.sampling(run.seed if run else DEFAULT_SEED)
    params = params.model_copy(update=_given(flags, ("temperature", "max_new_tokens", "seed")))
    runner = runner.model_copy(
        update=_given(flags, ("max_episode_tokens", "batch_size"))
        | ({"max_agent_turns": flags.max_turns} if flags.max_turns is not None else {})
    )
    return EvalChoices(
        tasks=_first(flags.tasks, _held_out_tasks(like) if like is not None else DEFAULT_TASKS),
        k=k,
        params=params,
        runner=runner.runner_config(flags.backend),
        dtype=_first(flags.dtype, model.generation_dtype()),
        local=LocalModelOptions(
            device=model.device,
            # The run's cap on rows a generate call (its memory bound on a GPU); an
            # explicit --batch-size is generated whole.
            max_batch_size=_first(flags.batch_size, model.max_batch_size),
            template_kwargs=dict(model.template_kwargs),
        ),
    )


def _held_out_tasks(run_dir: Path) -> str:
    path = RunLayout(run_dir).held_out_tasks
    if not path.is_file():
        raise UserError(f"--like {run_dir}: no held-out set at {path}: pass --tasks")
    return str(path)


def _given(flags: EvalFlags, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(flags, name) for name in names if getattr(flags, name) is not None}


def _first(given: Any, otherwise: Any) -> Any:
    return otherwise if given is None else given
