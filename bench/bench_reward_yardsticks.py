"""What the reward passes: every scripted yardstick and attack policy on the bundled
fixtures and on synthesized and evolved tasks, on both tool back-ends.

A sound reward passes the oracle everywhere, the hack nowhere, and no attack on a task
that needs the step it skips; the two back-ends agree task by task.

    python bench/bench_reward_yardsticks.py [--tasks-per-workflow 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import write_result

from agentwheel.core.dataset import load_tasks
from agentwheel.core.run_layout import TASKS_FILE
from agentwheel.core.task import Task
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.user import ScriptedUser
from agentwheel.flywheels.agentic.evolve import evolve_agentic
from agentwheel.flywheels.agentic.synth import synth_agentic
from agentwheel.settings.runner import RunnerConfig
from agentwheel.specs import YARDSTICK_POLICIES

WORKFLOWS = Path("agentwheel/data/workflows")


def task_sets(root: Path, per_workflow: int) -> dict[str, list[Task]]:
    from agentwheel.envs.scripted import CautiousPolicy
    from agentwheel.eval.evaluate import run_eval

    synth_agentic(root / "synth", sorted(map(str, WORKFLOWS.glob("*.yaml"))), per_workflow)
    synthesized = load_tasks(root / "synth" / TASKS_FILE).tasks
    run_eval(
        synthesized,
        CautiousPolicy(),
        ScriptedUser(),
        1,
        root / "eval0",
        RunnerConfig(),
        meta={"tasks": str(root / "synth" / TASKS_FILE)},
    )
    evolve_agentic(
        root / "eval0",
        CautiousPolicy(),
        root / "evolved",
        samples=1,
        tasks_per_workflow=per_workflow,
        use_band=False,
        workflows=str(WORKFLOWS),
        operators=("deepen",),
    )
    return {
        "fixtures": load_tasks("fixtures").tasks,
        "synthesized": synthesized,
        "evolved": load_tasks(root / "evolved" / TASKS_FILE).tasks,
    }


def outcomes(policy: str, tasks: list[Task], backend: str) -> dict[str, bool]:
    runner = EpisodeRunner(
        YARDSTICK_POLICIES[policy](),
        ScriptedUser(),
        RunnerConfig(backend=backend),  # type: ignore[arg-type]
    )
    return {t.task_id: t.passed for t in runner.run(EpisodeSpec(task=task) for task in tasks)}


def summarize(tasks: list[Task], passed: dict[str, bool]) -> dict:
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for task in tasks:
        by_kind[task.branch_kind].append(passed[task.id])
    return {
        "pass1": round(sum(passed.values()) / len(passed), 4),
        "passed": sum(passed.values()),
        "by_branch_kind": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks-per-workflow", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sets = task_sets(Path(tmp), args.tasks_per_workflow)
    results: dict = {}
    print(f"{'policy':20} {'tasks':12} {'n':>4} {'sqlite':>7} {'mock':>7} disagree")
    for name, tasks in sets.items():
        for policy in YARDSTICK_POLICIES:
            sqlite, mock = outcomes(policy, tasks, "sqlite"), outcomes(policy, tasks, "mock")
            disagree = sorted(i for i in sqlite if sqlite[i] != mock[i])
            line = {
                "n_tasks": len(tasks),
                "sqlite": summarize(tasks, sqlite),
                "mock": summarize(tasks, mock),
                "disagree": disagree,
            }
            results.setdefault(name, {})[policy] = line
            print(
                f"{policy:20} {name:12} {len(tasks):4} {line['sqlite']['pass1']:7.3f}"
                f" {line['mock']['pass1']:7.3f} {len(disagree)}"
            )
    write_result("reward_yardsticks", {"task_sets": results})


if __name__ == "__main__":
    main()
