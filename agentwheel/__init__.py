"""agentwheel: train small language models to be tool-using agents.

The public Python API, imported on first use so that `import agentwheel.core` stays cheap
(no torch, no transformers) and no layer imports another through this package:

    import agentwheel as aw

    aw.synth_agentic(out)                      # workflows → validated tasks on disk
    tasks = aw.load_tasks(out).tasks           # a JSONL file, a directory, or "fixtures"
    policy = aw.load_policy("oracle", aw.SamplingParams())
    summary = aw.run_eval(tasks, policy, aw.load_user("scripted"), 1, run_dir, aw.RunnerConfig())
    config = aw.load_config(aw.find_config("tiny"), ["grpo.lr=2e-6"])
    aw.run_schedule(config, run_dir)

See docs/python_api.py for a complete example.
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import TYPE_CHECKING, Any

try:
    __version__ = metadata.version("agentwheel")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

# public name → the module that defines it
_API = {
    "Task": "agentwheel.core.task",
    "TaskSet": "agentwheel.core.dataset",
    "load_tasks": "agentwheel.core.dataset",
    "write_tasks": "agentwheel.core.dataset",
    "SamplingParams": "agentwheel.core.messages",
    "bundled_config": "agentwheel.core.resources",
    "bundled_config_names": "agentwheel.core.resources",
    "find_config": "agentwheel.core.resources",
    "RunnerConfig": "agentwheel.settings.runner",
    "run_eval": "agentwheel.eval.evaluate",
    "synth_agentic": "agentwheel.flywheels.agentic.synth",
    "ScheduleConfig": "agentwheel.settings.schedule",
    "load_config": "agentwheel.settings.schedule",
    "run_schedule": "agentwheel.train.schedule",
    "load_chat_model": "agentwheel.specs",
    "load_policy": "agentwheel.specs",
    "load_user": "agentwheel.specs",
}

__all__ = [
    "RunnerConfig",
    "SamplingParams",
    "ScheduleConfig",
    "Task",
    "TaskSet",
    "__version__",
    "bundled_config",
    "bundled_config_names",
    "find_config",
    "load_chat_model",
    "load_config",
    "load_policy",
    "load_tasks",
    "load_user",
    "run_eval",
    "run_schedule",
    "synth_agentic",
    "write_tasks",
]

if TYPE_CHECKING:
    from agentwheel.core.dataset import TaskSet, load_tasks, write_tasks
    from agentwheel.core.messages import SamplingParams
    from agentwheel.core.resources import bundled_config, bundled_config_names, find_config
    from agentwheel.core.task import Task
    from agentwheel.eval.evaluate import run_eval
    from agentwheel.flywheels.agentic.synth import synth_agentic
    from agentwheel.settings.runner import RunnerConfig
    from agentwheel.settings.schedule import ScheduleConfig, load_config
    from agentwheel.specs import load_chat_model, load_policy, load_user
    from agentwheel.train.schedule import run_schedule


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'agentwheel' has no attribute {name!r}")
    value = getattr(import_module(_API[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
