"""The run report: PNG plots of the training curves and `report.md` with the results table.

Reads only the run directory (`state.json`, `metrics.jsonl`, `rounds/*/report.json`), so it
can be rerun on a finished or half-finished run. Plots need matplotlib; without it the
report says so and carries the table alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentwheel.core.run_layout import (
    METRICS,
    ROUND_PREFIX,
    ROUND_REPORT,
    ROUNDS_DIR,
    STATE,
    RunLayout,
    stage_label,
)

PLOTS = (
    ("reward", "rollout_reward_mean", "rollout reward (mean)"),
    ("kl", "approx_kl", "approx KL(old || new)"),
    ("entropy", "entropy", "entropy of agent tokens"),
    ("response_length", "response_tokens_mean", "agent tokens per trajectory"),
)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The run's metrics.jsonl, one dict per step or eval."""
    path = run_dir / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _read(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    state = json.loads((run_dir / STATE).read_text()) if (run_dir / STATE).exists() else {}
    metrics = read_metrics(run_dir)
    rounds = [
        json.loads(p.read_text())
        for p in sorted(
            (run_dir / ROUNDS_DIR).glob(f"{ROUND_PREFIX}*/{ROUND_REPORT}"),
            key=lambda p: int(p.parent.name.split("-")[1]),
        )
    ]
    return state, metrics, rounds


def _eval_names(state: dict[str, Any]) -> list[str]:
    """Eval names in run order: base, sft, round-1, round-2, ..."""
    evals = state.get("evals", {})
    rounds = sorted((k for k in evals if k.startswith("round-")), key=lambda k: int(k[6:]))
    return [k for k in ["base", "sft", *rounds] if k in evals]


def eval_rows(state: dict[str, Any]) -> list[tuple[str, float]]:
    """(stage, held-out pass^1) in run order: base, after SFT, after each RL round."""
    return [(stage_label(k), state["evals"][k]) for k in _eval_names(state)]


def write_plots(run_dir: Path, metrics: list[dict[str, Any]], state: dict[str, Any]) -> list[str]:
    """PNG files under `plots/`; returns their names (empty, with no error, without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out = RunLayout(run_dir).plots
    out.mkdir(exist_ok=True)
    written = []
    grpo = [m for m in metrics if m.get("stage") == "grpo"]
    for name, key, title in PLOTS:
        points = [(m["global_step"], m[key]) for m in grpo if key in m]
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
        ax.set_xlabel("global step")
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=100)
        plt.close(fig)
        written.append(f"{name}.png")
    sft = [m for m in metrics if m.get("stage") == "sft"]
    if sft:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([m["global_step"] for m in sft], [m["loss"] for m in sft], marker="o")
        ax.set_xlabel("global step")
        ax.set_title("SFT loss (NLL per agent token)")
        fig.tight_layout()
        fig.savefig(out / "sft_loss.png", dpi=100)
        plt.close(fig)
        written.append("sft_loss.png")
    rows = eval_rows(state)
    if rows:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar([r[0] for r in rows], [r[1] for r in rows])
        ax.set_ylim(0, 1)
        ax.set_ylabel("held-out pass^1")
        ax.set_title("held-out pass^1 per stage")
        fig.tight_layout()
        fig.savefig(out / "held_out_pass1.png", dpi=100)
        plt.close(fig)
        written.append("held_out_pass1.png")
    return written


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def eval_table(state: dict[str, Any], metrics: list[dict[str, Any]]) -> list[str]:
    """Held-out pass^1 per stage, overall and split into unseen workflows and new tasks
    of the train workflows."""
    records = {m["eval"]: m for m in metrics if m.get("stage") == "eval"}
    lines = [
        "| stage | pass^1 | unseen workflows | train workflows, new tasks |",
        "|---|---|---|---|",
    ]
    for name in _eval_names(state):
        record = records.get(name, {})
        lines.append(
            f"| {stage_label(name)} | {state['evals'][name]:.3f} | "
            f"{_fmt(record.get('held_out_pass1_unseen_workflows'))} | "
            f"{_fmt(record.get('held_out_pass1_seen_workflows'))} |"
        )
    return lines


# Below these, one task or one update moves held-out pass^1 by more than the effect the RL
# rounds are meant to show (+10 points), so the report says so rather than let a reader
# take noise for learning.
MIN_HELD_OUT_FOR_EFFECT = 100
MIN_UPDATES_FOR_EFFECT = 10


def effect_size_note(rounds: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> list[str]:
    """A plain paragraph when the run is too small to tell an RL effect from noise."""
    if not rounds:
        return []
    updates = sum(int(r.get("updates", 0)) for r in rounds)
    held_out = [int(m["held_out_tasks"]) for m in metrics if "held_out_tasks" in m]
    n = min(held_out) if held_out else 0
    if n >= MIN_HELD_OUT_FOR_EFFECT and updates >= MIN_UPDATES_FOR_EFFECT:
        return []
    one_task = f"one task = {100 / n:.0f} points" if n else "its size was not recorded"
    return [
        "",
        "## Can this run show an RL effect?",
        "",
        f"No: its RL rounds made {updates} GRPO updates and its held-out set has {n} tasks "
        f"({one_task}), too few to tell a change of +10 points from noise. Whether RL on "
        "flywheel data beats SFT alone is what `agentwheel study` measures (docs/study.md): "
        "150+ held-out tasks, the same SFT checkpoint and RL budget "
        "for each arm, and paired bootstrap intervals.",
    ]


def render_report(
    state: dict[str, Any],
    rounds: list[dict[str, Any]],
    plots: list[str],
    name: str = "run",
    metrics: list[dict[str, Any]] | None = None,
) -> str:
    lines = [
        f"# Training report: {name}",
        "",
        "## Held-out pass^1",
        "",
        *eval_table(state, metrics or []),
    ]
    if rounds:
        lines += [
            "",
            "## Rounds",
            "",
            "| round | kind | tasks | source | steps | updates | rollout reward | groups dropped | pass^1 after |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rounds:
            sel = r.get("selection", {})
            after = r.get("held_out_pass1_after")
            lines.append(
                f"| {r['round']} | {r['kind']} | {sel.get('train_tasks', '')} | "
                f"{sel.get('tasks_source', '')} | {r['steps']} | {r['updates']} | "
                f"{r['rollout_reward_mean']:.3f} | {r['groups_dropped']} | "
                f"{'' if after is None else f'{after:.3f}'} |"
            )
    lines += effect_size_note(rounds, metrics or [])
    lines += ["", "## Plots", ""]
    if plots:
        lines += [f"![{p}](plots/{p})" for p in plots]
    else:
        lines.append("No plots: matplotlib is not installed (`pip install matplotlib`).")
    notes = state.get("notes", [])
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_report(run_dir: str | Path, plots: bool = True) -> Path:
    """Write plots (when possible) and report.md into the run directory."""
    run_dir = Path(run_dir)
    state, metrics, rounds = _read(run_dir)
    written = write_plots(run_dir, metrics, state) if plots else []
    name = run_dir.name
    path = RunLayout(run_dir).report
    path.write_text(render_report(state, rounds, written, name, metrics))
    return path
