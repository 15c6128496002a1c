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


def stage_rank(eval_name: str) -> int:
    """Run order of the held-out evals: base, sft, round-1, round-2, ..."""
    return {"base": -2, "sft": -1}.get(eval_name, round_number(eval_name) or 0)


def stage_label(eval_name: str) -> str:
    """How reports name the policy an eval scored: base, after SFT, after RL round-2."""
    return {"base": "base", "sft": "after SFT"}.get(eval_name, f"after RL {eval_name}")
