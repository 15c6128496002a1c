"""Pass rates of scripted policies on industrial tasks (shared by the flywheel tests)."""

from __future__ import annotations

from collections.abc import Sequence

from agentwheel.core.task import Task
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec, RunnerConfig
from agentwheel.envs.scripted import SCRIPTED_POLICIES
from agentwheel.envs.user import ScriptedUser


def pass_rate(policy: str, tasks: Sequence[Task], backend: str = "auto") -> float:
    """The share of `tasks` the scripted `policy` passes with the scripted user."""
    config = RunnerConfig(backend=backend)  # type: ignore[arg-type]
    runner = EpisodeRunner(SCRIPTED_POLICIES[policy](), ScriptedUser(), config)
    results = runner.run([EpisodeSpec(t) for t in tasks])
    return sum(r.passed for r in results) / len(results)
