"""The validation gate in front of `agentwheel eval`: a task that cannot both pass and fail
for the right reasons (agentwheel/flywheels/agentic/validate.py) says nothing about the
policy, so it is skipped, listed with its reason and recorded in summary.json.

Tasks over a live search API (`api:` collections) pass through ungated: their pages
change, so no offline replay can verify them; they are scored answer-only (their
`evidence_docs`, if they name any urls, are still required) and listed in summary.json.

The gate lives in the flywheels layer, above eval; the command line joins the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape

from agentwheel.cli.errors import fail
from agentwheel.core.task import Task
from agentwheel.envs.tools import Backend

SHOWN = 10  # rejections printed one per line; the rest are counted
DETAIL_CHARS = 160


def gate_tasks(
    tasks: Sequence[Task], backend: Backend | Literal["auto"], console: Console
) -> tuple[list[Task], list[dict[str, Any]]]:
    """The tasks that pass the gate (and the live ones, ungated), and one record (task,
    reason, detail) per rejected one. Every task rejected is an error: there would be
    nothing to score."""
    from agentwheel.flywheels.agentic.validate import validate_tasks

    live = {t.id for t in tasks if t.search is not None and t.search.live}
    if live:
        console.print(f"{len(live)} tasks search a live API: scored answer-only, not gate-verified")
    offline = [t for t in tasks if t.id not in live]
    with console.status(f"validating {len(offline)} tasks (scripted replays)"):
        report = validate_tasks(offline, backend=backend)
    kept_ids = live | {t.id for t in report.kept}
    skipped = [
        {"task": r.item, "reason": r.reason, "detail": " ".join(r.detail.split())}
        for r in report.rejected
    ]
    for record in skipped[:SHOWN]:
        detail = record["detail"]
        if len(detail) > DETAIL_CHARS:
            detail = detail[:DETAIL_CHARS] + "…"
        line = f"skipped invalid task {record['task']}: {record['reason']}: {detail}"
        console.print(f"[yellow]{escape(line)}[/]", soft_wrap=True)
    if len(skipped) > SHOWN:
        console.print(f"… and {len(skipped) - SHOWN} more (all in summary.json)")
    if not kept_ids:
        raise fail(
            f"all {len(tasks)} tasks failed validation (listed above): fix them, "
            "or pass --no-validate to score them anyway"
        )
    if skipped:
        console.print(
            f"{len(skipped)} of {len(tasks)} tasks failed validation and are not scored "
            "(--no-validate scores them)"
        )
    return [t for t in tasks if t.id in kept_ids], skipped
