"""study.md (the table, the paired differences, a plain sentence per goal, the notes) and
study_curves.png (the RL arms' curves side by side), from study.json's content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentwheel.core.run_layout import STUDY_CURVES, StudyLayout
from agentwheel.core.task import BRANCH_KINDS, RIGHT_STANCE, STANCES
from agentwheel.eval.stances import decline_rates, right_stance_counts
from agentwheel.study.config import ARMS, PASS_K, RL_ARMS

STEP_PANELS = (
    ("rollout_reward_mean", "rollout reward (mean)"),
    ("entropy", "entropy of agent tokens"),
    ("approx_kl", "approx KL(old || new)"),
    ("rollout_tool_calls_mean", "tool calls per episode"),
)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _ci(ci: list[float] | tuple[float, float]) -> str:
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if min(ci) < 0 else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def arms_table(result: dict[str, Any]) -> list[str]:
    head = [
        "arm",
        "pass^1",
        "95% CI",
        f"pass^{PASS_K}",
        *BRANCH_KINDS,
        "unseen",
        "seen",
        "train pool",
        "asked again",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for arm in ARMS:
        a = result["arms"][arm]
        row = [
            arm,
            _fmt(a["pass1"]),
            _ci(a["ci95"]),
            _fmt(a[f"pass_hat_{PASS_K}"]),
            *(_fmt(a["by_branch_kind"][k]) for k in BRANCH_KINDS),
            _fmt(a["unseen"]),
            _fmt(a["seen"]),
            _fmt(a["train_pool_pass1"]),
            _fmt(a.get("asked_again")),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def failures_table(result: dict[str, Any]) -> list[str]:
    """Per arm, how many greedy held-out episodes missed each condition of the reward (an
    episode can miss several)."""
    arms = result["arms"]
    reasons = sorted({r for arm in ARMS for r in arms[arm].get("failure_reasons", {})})
    lines = ["| arm | " + " | ".join(reasons) + " |", "|---" * (len(reasons) + 1) + "|"]
    for arm in ARMS:
        counts = arms[arm].get("failure_reasons", {})
        lines.append(f"| {arm} | " + " | ".join(str(counts.get(r, 0)) for r in reasons) + " |")
    return lines


def stance_tables(result: dict[str, Any]) -> list[str]:
    """Per arm and branch kind: how many greedy held-out episodes took the kind's right
    stance and how many passed; then every stance's count (`eval.stances`)."""
    arms = {arm: result["arms"][arm]["stances"] for arm in ARMS if "stances" in result["arms"][arm]}
    if not arms:
        return []
    kinds = [k for k in BRANCH_KINDS if any(k in m for m in arms.values())]
    right = {arm: right_stance_counts(m) for arm, m in arms.items()}
    legend = "; ".join(f"{k}: {RIGHT_STANCE[k].replace('_', ' ')}" for k in kinds)
    lines = [
        f"Right stance → passed, of the kind's episodes ({legend}):",
        "",
        "| arm | " + " | ".join(kinds) + " |",
        "|---" * (len(kinds) + 1) + "|",
    ]
    for arm, counts in right.items():
        cells = [
            f"{c['right_stance']} → {c['passed']} of {c['episodes']}"
            for c in (counts.get(k, {"right_stance": 0, "passed": 0, "episodes": 0}) for k in kinds)
        ]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Every stance taken (" + " · ".join(STANCES) + "):",
        "",
        "| arm | " + " | ".join(kinds) + " |",
        "|---" * (len(kinds) + 1) + "|",
    ]
    for arm, matrix in arms.items():
        cells = [
            " · ".join(str(matrix[k].get(s, {"episodes": 0})["episodes"]) for s in STANCES)
            if k in matrix
            else "–"
            for k in kinds
        ]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return [*lines, "", *decline_table(arms)]


def decline_table(arms: dict[str, Any]) -> list[str]:
    """Per arm, the decline rate on tasks to be declined against tasks to be done: their
    difference is how far the policy tells the two apart."""
    to_decline = ", ".join(k for k in BRANCH_KINDS if RIGHT_STANCE[k] == "declined")
    lines = [
        f"Declined, of tasks to be declined ({to_decline}) and of tasks to be done:",
        "",
        "| arm | to be declined | to be done | difference |",
        "|---|---|---|---|",
    ]
    for arm, matrix in arms.items():
        rates = decline_rates(matrix)
        shares = [
            rates[side]["declined"] / rates[side]["episodes"] if rates[side]["episodes"] else 0.0
            for side in ("to_decline", "to_do")
        ]
        cells = [
            f"{rates[s]['declined']} of {rates[s]['episodes']}" for s in ("to_decline", "to_do")
        ]
        lines.append(f"| {arm} | {cells[0]} | {cells[1]} | {shares[0] - shares[1]:+.2f} |")
    return lines


def goal_sentences(goal: dict[str, Any]) -> list[str]:
    """One plain sentence per goal: met or not, with the numbers."""

    def verdict(met: bool) -> str:
        return "**met**" if met else "**not met**"

    g = goal["beats_sft"]
    lines = [
        f"- rl_flywheel beats SFT ({g['wanted']}): {verdict(g['met'])} — difference "
        f"{g['mean']:+.3f}, paired 95% interval {_ci(g['ci95'])}.",
    ]
    g = goal["no_kind_below_sft"]
    below = ", ".join(
        f"{kind} {v['sft']:.3f} → {v['rl_flywheel']:.3f}" for kind, v in g["below"].items()
    )
    lines.append(
        f"- No branch kind below its SFT level: {verdict(g['met'])}"
        + (f" — below: {below}." if below else ".")
    )
    g = goal["beats_refuse"]
    lines.append(
        f"- rl_flywheel above the refuse floor (look up, then decline) ({g['wanted']}): {verdict(g['met'])} "
        f"— {g['rl_flywheel']:.3f} vs {g['refuse']:.3f}."
    )
    g = goal["at_least_static"]
    lines.append(
        f"- rl_flywheel ≥ rl_static: {verdict(g['met'])} — {g['rl_flywheel']:.3f} vs "
        f"{g['rl_static']:.3f}."
    )
    return lines


def _rl_pool_words(result: dict[str, Any]) -> str:
    n = result.get("rl_pool_tasks", 0)
    return f"; RL pool: {n} new tasks that SFT never saw" if n else ""


def _shared_from_words(result: dict[str, Any]) -> str:
    source = result.get("shared_from")
    return f" (data, SFT and the refuse/base/SFT evals copied from {source})" if source else ""


def where_it_ran(result: dict[str, Any]) -> list[str]:
    """One line per phase: the CPUs and dtypes it ran on (a study crosses machines)."""
    ran_on: dict[str, list[dict[str, Any]]] = result.get("ran_on") or {}
    mixed = result.get("mixed_numerics")
    lines = []
    if mixed:
        lines += [
            "**The phases computed in different dtypes**: arms compared across them differ "
            "by the rounding as well as by the training draw.",
            "",
        ]
    elif mixed is None:
        lines += ["Not recorded for every phase (some ran before the study kept it).", ""]
    for phase, records in ran_on.items():
        places = "; ".join(
            f"{r['cpu']} ({', '.join(r['cpu_flags']) or 'no flags read'}), "
            + ", ".join(f"{role} {dtype}" for role, dtype in r["numerics"].items())
            for r in records
        )
        lines.append(f"- {phase}: {places}")
    return lines


def render_study(result: dict[str, Any], plot: bool) -> str:
    budget = result["rl_budget"]
    lines = [
        f"# Learning study: {result['config']} ({result['model']})",
        "",
        f"Held out: {result['held_out_tasks']} tasks ({result['held_out_unseen_tasks']} of "
        f"workflows never trained on: {', '.join(result['held_out_unseen_workflows'])}; the "
        f"rest new tasks of the train workflows). Train pool: {result['train_pool_tasks']} "
        f"tasks{_rl_pool_words(result)}. RL budget per arm: {budget['rounds']} rounds × "
        f"{budget['steps_per_round']} steps × {budget['groups_per_step']} groups × "
        f"{budget['rollouts_per_group']} rollouts"
        f"{' (branch kinds balanced per batch)' if budget['balance_kinds'] else ''}. "
        f"Wall time {result['wall_s'] / 60:.1f} min{_shared_from_words(result)}.",
        "",
        f"Greedy held-out pass^1 (95% bootstrap interval over tasks), sampled pass^{PASS_K}, "
        "pass^1 per branch kind and on unseen / seen workflows, greedy pass^1 on a train-pool "
        "sample, and the share of greedy held-out episodes that asked the user again for a "
        "fact it had given (a failure):",
        "",
        *arms_table(result),
        "",
        "Paired differences of greedy pass^1 (bootstrap over tasks):",
        "",
        "| difference | mean | 95% CI |",
        "|---|---|---|",
    ]
    for name, d in result["diff"].items():
        lines.append(f"| {name} | {d['mean']:+.3f} | {_ci(d['ci95'])} |")
    lines += ["", "## Goals", "", *goal_sentences(result["goal"])]
    lines += ["", "## Why held-out episodes failed", "", *failures_table(result)]
    stance_lines = stance_tables(result)
    if stance_lines:
        lines += ["", "## What the agent did, by branch kind", "", *stance_lines]
    if plot:
        lines += ["", "## Curves", "", f"![curves]({STUDY_CURVES})"]
    if result.get("ran_on"):
        lines += ["", "## Where it ran", "", *where_it_ran(result)]
    notes = [(arm, n) for arm in RL_ARMS for n in result["notes"].get(arm, [])]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {arm}: {n}" for arm, n in notes]
    return "\n".join(lines) + "\n"


def write_curves(path: Path, result: dict[str, Any]) -> bool:
    """The arms' curves in one PNG; False (and no file) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    ax = axes[0][0]
    for arm in RL_ARMS:
        evals = result["curves"][arm]["evals"]
        ax.plot([e["round"] for e in evals], [e["held_out_pass1"] for e in evals], "o-", label=arm)
    ax.axhline(result["arms"]["refuse"]["pass1"], color="grey", ls=":", label="refuse")
    ax.set_xlabel("round (0 = SFT)")
    ax.set_title("held-out pass^1 (greedy)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    for ax, (key, title) in zip(axes.flat[1:5], STEP_PANELS, strict=True):
        for arm in RL_ARMS:
            steps = [s for s in result["curves"][arm]["steps"] if key in s]
            ax.plot([s["step"] for s in steps], [s[key] for s in steps], "o-", ms=3, label=arm)
        ax.set_xlabel("GRPO step")
        ax.set_title(title)
        ax.legend(fontsize=7)
    ax = axes[1][2]
    for kind in BRANCH_KINDS:
        key = f"rollout_reward_{kind}"
        steps = [s for s in result["curves"]["rl_flywheel"]["steps"] if key in s]
        ax.plot([s["step"] for s in steps], [s[key] for s in steps], "o-", ms=3, label=kind)
    ax.set_xlabel("GRPO step")
    ax.set_title("rl_flywheel: rollout reward per branch kind")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_study_report(files: StudyLayout, result: dict[str, Any], plots: bool = True) -> Path:
    drew = plots and write_curves(files.curves, result)
    files.report.write_text(render_study(result, drew))
    return files.report
