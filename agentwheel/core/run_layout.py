"""The file and folder names of a training run directory that readers outside the trainer
(the report, the episode browser) rely on. The trainer writes them; nothing else names them."""

from __future__ import annotations

STATE = "state.json"
METRICS = "metrics.jsonl"
EVALS_DIR = "evals"
ROUNDS_DIR = "rounds"
ROUND_REPORT = "report.json"
ROUND_PREFIX = "round-"


def round_dir_name(round_: int) -> str:
    """`round-3`: a round's folder under `rounds/`, and the name of the eval after it."""
    return f"{ROUND_PREFIX}{round_}"


def round_number(name: str) -> int | None:
    """3 for `round-3`; None for any other name (base, sft)."""
    if name.startswith(ROUND_PREFIX) and name[len(ROUND_PREFIX) :].isdigit():
        return int(name[len(ROUND_PREFIX) :])
    return None
