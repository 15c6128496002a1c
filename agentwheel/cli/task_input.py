"""Reading the tasks a command was pointed at."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from agentwheel.cli.errors import fail
from agentwheel.core.dataset import TaskSet

console = Console(stderr=True)


def read_task_set(tasks: str, skipped: str) -> TaskSet:
    """The tasks named on the command line; unreadable lines are printed and skipped, and
    a source with no valid task at all is an error."""
    from agentwheel.core.dataset import load_tasks

    task_set = load_tasks(tasks)
    for error in task_set.errors:
        console.print(f"[yellow]{skipped}[/] {escape(str(error))}", soft_wrap=True)
    if not task_set.tasks:
        raise fail(
            f"no valid tasks in {tasks!r} ({len(task_set.errors)} unreadable lines, listed "
            "above): pass a task JSONL file or directory, or a bundled name (fixtures)"
        )
    return task_set
