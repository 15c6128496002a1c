"""The agent's policy text for a procedurally expanded tree: the domain background, the
rules the tree checks, and the lines every task of the workflow shares (identifiers and
facts to ask for, how to decline or hand over, what is out of scope, what to tell)."""

from __future__ import annotations

import random

from agentwheel.flywheels.agentic.tree import BehaviorTree
from agentwheel.flywheels.agentic.workflow import Workflow


def instruction_for(wf: Workflow, tree: BehaviorTree, rng: random.Random) -> str:
    """Domain background plus the policy this tree's branches are decided by.

    Every branch of a tree gets the same rules: which rule fails is what the agent must
    find out, so listing only the failing one would give the answer away. A workflow with
    further intents gets one policy block per intent, and the shared lines once.
    """
    ids = _joined([i.spoken for i in wf.identifiers])
    views = [view for _, view in wf.views()]
    if len(views) == 1:
        rules = [r.precondition.rule for r in tree.rules]
        rng.shuffle(rules)
        blocks = [f"Policy for requests to {wf.phrasing.action}:"]
        action = wf.phrasing.action
    else:
        blocks = []
        for view in views:
            rules = _rules_of(view, tree)
            rng.shuffle(rules)
            blocks += [f"Policy for requests to {view.phrasing.action}:"]
            blocks += [f"- {rule}" for rule in rules]
            blocks += [""]
        blocks += ["For all of these requests:"]
        rules = []
        action = " or ".join(v.phrasing.action for v in views)
    oos = "; ".join(o.rule for o in wf.out_of_scope if o.desk is None)
    transfer_id = wf.identifier(wf.transfer.identifier).spoken
    has_transfer_rules = any(r.precondition.on_fail == "transfer" for r in tree.rules)
    decline = (
        f"- If any condition above is not met, do not {action}: explain which "
        "condition is not met and decline, even if the user insists or brings new claims "
        "you cannot verify with your tools."
    )
    if has_transfer_rules and wf.desks:
        decline = (
            f"- If any condition above is not met, do not {action}: explain which "
            "condition is not met and decline, or, where the condition says so, transfer "
            "the user with the hand-off tool of the desk it names; do so even if the user "
            "insists or brings new claims you cannot verify with your tools."
        )
    elif has_transfer_rules:
        decline = (
            f"- If any condition above is not met, do not {action}: explain which "
            "condition is not met and decline, or, where the condition says so, transfer "
            f"the user to a human agent with {wf.transfer.tool}; do so even if the user "
            "insists or brings new claims you cannot verify with your tools."
        )
    facts = [f.spoken for view in views for f in view.needed_facts()]
    tells = [(view.phrasing.action, t.spoken) for view in views for s in view.steps for t in s.tell]
    lines = [
        wf.background.strip(),
        "",
        *blocks,
        f"- You need the user's {ids} before you look anything up. If any is missing, ask for "
        "it; never guess an identifier or act on a record the user did not name.",
        *(
            [
                f"- You also need the {_joined(list(dict.fromkeys(facts)))} where the request "
                "depends on it; if the user has not given it, ask for it, never assume it."
            ]
            if facts
            else []
        ),
        *(f"- {rule}" for rule in rules),
        decline,
        *(
            [
                f"- These requests are outside what you can handle: {oos}. For them, transfer "
                f"the user to a human agent with {wf.transfer.tool}, passing their "
                f"{transfer_id}, and do not try to resolve them yourself."
            ]
            if oos
            else []
        ),
        *_desk_lines(wf, transfer_id),
        "- Change records only through your tools, and only after every check has passed.",
        *(f"- When you {act}, tell the user the {what} in your reply." for act, what in tells),
    ]
    return "\n".join(lines)


def _desk_lines(wf: Workflow, transfer_id: str) -> list[str]:
    """Which hand-off tool reaches which desk, and the out-of-scope requests each takes."""
    lines = []
    for desk in wf.desks:
        kinds = [o.rule for o in wf.out_of_scope if o.desk == desk.name]
        takes = (
            f"; it takes {'; '.join(kinds)}, which you must not resolve yourself" if kinds else ""
        )
        lines.append(
            f"- {desk.tool} hands the user to the {desk.spoken}, passing their "
            f"{transfer_id}{takes}."
        )
    return lines


def _rules_of(view: Workflow, tree: BehaviorTree) -> list[str]:
    own = {p.id for _, p, _ in view.all_preconditions()}
    return [r.precondition.rule for r in tree.rules if r.precondition.id in own]


def _joined(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
