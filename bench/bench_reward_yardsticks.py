"""What the reward passes: every scripted yardstick and attack policy on the bundled
fixtures and on synthesized and evolved tasks, on both tool back-ends.

A sound reward passes the oracle everywhere, the hack nowhere, and no attack on a task
that needs the step it skips; the two back-ends agree task by task. Each line also gives
the mean training reward at `grpo.wrong_stance_penalty` 0.5 (`training_reward_mean`):
declining a task to be done must train below failing at it.

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
from agentwheel.envs.stance import stance_shaped_reward
from agentwheel.envs.user import ScriptedUser
from agentwheel.flywheels.agentic.evolve import evolve_agentic
from agentwheel.flywheels.agentic.synth import synth_agentic
from agentwheel.settings.runner import RunnerConfig
from agentwheel.specs import YARDSTICK_POLICIES

WORKFLOWS = Path("agentwheel/data/workflows")
PENALTY = 0.5  # grpo.wrong_stance_penalty of the training reward reported beside pass^1


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


def outcomes(policy: str, tasks: list[Task], backend: str) -> dict[str, tuple[bool, float]]:
    """Per task: passed, and the training reward at PENALTY."""
    runner = EpisodeRunner(
        YARDSTICK_POLICIES[policy](),
        ScriptedUser(),
        RunnerConfig(backend=backend),  # type: ignore[arg-type]
    )
    return {
        t.task_id: (t.passed, stance_shaped_reward(t, PENALTY))
        for t in runner.run(EpisodeSpec(task=task) for task in tasks)
    }


def summarize(tasks: list[Task], results: dict[str, tuple[bool, float]]) -> dict:
    passed = {i: p for i, (p, _) in results.items()}
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for task in tasks:
        by_kind[task.branch_kind].append(passed[task.id])
    return {
        "pass1": round(sum(passed.values()) / len(passed), 4),
        "passed": sum(passed.values()),
        "by_branch_kind": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())},
        "training_reward_mean": round(sum(r for _, r in results.values()) / len(results), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks-per-workflow", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sets = task_sets(Path(tmp), args.tasks_per_workflow)
    results: dict = {}
    print(f"{'policy':20} {'tasks':12} {'n':>4} {'sqlite':>7} {'mock':>7} disagree  trained")
    for name, tasks in sets.items():
        for policy in YARDSTICK_POLICIES:
            sqlite, mock = outcomes(policy, tasks, "sqlite"), outcomes(policy, tasks, "mock")
            disagree = sorted(i for i in sqlite if sqlite[i][0] != mock[i][0])
            line = {
                "n_tasks": len(tasks),
                "sqlite": summarize(tasks, sqlite),
                "mock": summarize(tasks, mock),
                "disagree": disagree,
            }
            results.setdefault(name, {})[policy] = line
            print(
                f"{policy:20} {name:12} {len(tasks):4} {line['sqlite']['pass1']:7.3f}"
                f" {line['mock']['pass1']:7.3f} {len(disagree):8} "
                f"{line['sqlite']['training_reward_mean']:+.3f}"
            )
    write_result("reward_yardsticks", {"wrong_stance_penalty": PENALTY, "task_sets": results})


if __name__ == "__main__":
    main()
