"""The tools a task of a workflow holds, and the extra tools that never fit.

A task holds 3 to 5 tools (the paper's range; small models pick worse among more): its
intent's step tools, the transfer tool, the other intents' step tools (so doing another
intent's action is a mistake the reward sees) and, where room is left, some of the
workflow's `extra_tools`. An extra tool that no intent has room for never reaches a
task; `crowded_out_tools` says so, as a warning `validate --workflows` and `synth` print.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from agentwheel.flywheels.agentic.workflow import MAX_TASK_TOOLS, MIN_TASK_TOOLS, ToolDef, Workflow


def base_tools(view: Workflow, siblings: Sequence[ToolDef] = ()) -> list[ToolDef]:
    """The tools every task of an intent holds: its steps', the hand-off tools, and the
    other intents' step tools (`siblings`) unless those only fill room (`when_room`)."""
    fixed = siblings if view.other_intent_tools == "always" else ()
    return [*(s.tool for s in view.steps), *view.handoff_tools(), *fixed]


def optional_tools(view: Workflow, siblings: Sequence[ToolDef] = ()) -> list[ToolDef]:
    """The tools drawn into the room a task has left: other intents' actions (with
    `when_room`), then the workflow's `extra_tools`."""
    if view.other_intent_tools == "always":
        return list(view.extra_tools)
    return [*(t for t in siblings if t.kind == "action"), *view.extra_tools]


def pick_tools(wf: Workflow, rng: random.Random, siblings: Sequence[ToolDef] = ()) -> list[ToolDef]:
    """The workflow's tools, the other intents' step tools (`siblings`), plus distractor
    tools, 3 to 5 in all, in a seeded order."""
    base = base_tools(wf, siblings)
    pool = optional_tools(wf, siblings)
    room = MAX_TASK_TOOLS - len(base)
    lo = max(0, MIN_TASK_TOOLS - len(base))
    count = min(rng.randint(lo, max(lo, room)), len(pool))
    tools = base + rng.sample(pool, count)
    rng.shuffle(tools)
    return tools


def sibling_tools(wf: Workflow, view: Workflow) -> list[ToolDef]:
    """The step tools of the workflow's other intents (an agent asked to extend a rental
    also holds the tool that adds a driver)."""
    own = {t.name for t in view.all_tools()}
    out: dict[str, ToolDef] = {}
    for _, other in wf.views():
        for step in other.steps:
            if step.tool.name not in own:
                out.setdefault(step.tool.name, step.tool)
    return list(out.values())


def crowded_out_tools(wf: Workflow) -> list[tuple[str, str]]:
    """(field path, warning) for each intent whose tasks have no room for `extra_tools`."""
    if not wf.extra_tools:
        return []
    extras = [t.name for t in wf.extra_tools]
    full = []
    for intent, view in wf.views():
        base = base_tools(view, sibling_tools(wf, view))
        if len(base) >= MAX_TASK_TOOLS:
            full.append(f"{intent or wf.views()[0][1].phrasing.action!r}: {len(base)}")
    if not full:
        return []
    where = "any task" if len(full) == len(wf.views()) else "the tasks of some intents"
    return [
        (
            "extra_tools",
            f"{extras} never appear in {where}: a task has at most {MAX_TASK_TOOLS} tools, and "
            f"the step tools of every intent plus the hand-off tools already make "
            f"{'; '.join(full)}; set `other_intent_tools: when_room` (an intent's tools count "
            "only in its own tasks), drop a step or an intent, or accept that these tools are "
            "left out",
        )
    ]
