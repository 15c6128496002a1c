"""A training run at a glance: held-out pass^1 per stage (and per branch kind), the
training curves, the round reports and the run's notes, read from its directory only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentwheel.core.run_layout import (
    METRICS,
    ROUND_REPORT,
    ROUNDS_DIR,
    STATE,
    round_number,
    stage_label,
    stage_rank,
)
from agentwheel.view.page_data import Curve, GroupView, RunView, StageView

# (metrics stage, key, title): the curves the page draws, in this order.
CURVES = (
    ("grpo", "rollout_reward_mean", "rollout reward (mean)"),
    ("grpo", "approx_kl", "approx KL(old ‖ new)"),
    ("grpo", "ref_kl", "KL to the reference"),
    ("grpo", "entropy", "entropy of agent tokens"),
    ("grpo", "rollout_tool_calls_mean", "tool calls per rollout"),
    ("grpo", "response_tokens_mean", "agent tokens per trajectory"),
    ("sft", "loss", "SFT loss (NLL per agent token)"),
)
KIND_PREFIX = "held_out_pass1_kind_"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl, skipping a torn last line."""
    path = run_dir / METRICS
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def curves(metrics: list[dict[str, Any]]) -> list[Curve]:
    out = []
    for stage, key, title in CURVES:
        points = [
            (float(m["global_step"]), float(m[key]))
            for m in metrics
            if m.get("stage") == stage
            and isinstance(m.get(key), int | float)
            and isinstance(m.get("global_step"), int | float)
        ]
        if points:
            out.append(Curve(key=key, title=title, points=points))
    return out


def stages(
    state: dict[str, Any], metrics: list[dict[str, Any]], groups: list[GroupView]
) -> list[StageView]:
    """Held-out pass^1 per stage from the run's state, with the split by branch kind from
    that eval's summary (or its metrics line) and by seen/unseen workflows."""
    evals = state.get("evals", {}) if isinstance(state.get("evals"), dict) else {}
    records = {m.get("eval"): m for m in metrics if m.get("stage") == "eval"}
    summaries = {g.stage: g.summary for g in groups if g.role == "held-out eval"}
    out = []
    for name in sorted(evals, key=stage_rank):
        record = records.get(name, {})
        summary = summaries.get(name, {})
        by_kind = {
            kind: float(v["pass_hat_k"]["1"])
            for kind, v in summary.get("by_branch_kind", {}).items()
            if "1" in v.get("pass_hat_k", {})
        } or {
            k[len(KIND_PREFIX) :]: float(v) for k, v in record.items() if k.startswith(KIND_PREFIX)
        }
        out.append(
            StageView(
                name=name,
                label=stage_label(name),
                pass1=float(evals[name]),
                n_tasks=summary.get("n_tasks", record.get("held_out_tasks")),
                by_kind=by_kind,
                unseen_workflows=record.get("held_out_pass1_unseen_workflows"),
                seen_workflows=record.get("held_out_pass1_seen_workflows"),
            )
        )
    return out


def round_reports(run_dir: Path) -> list[dict[str, Any]]:
    reports = []
    for path in (run_dir / ROUNDS_DIR).glob(f"*/{ROUND_REPORT}"):
        report = _read_json(path)
        if isinstance(report, dict) and round_number(path.parent.name) is not None:
            reports.append(report)
    return sorted(reports, key=lambda r: int(r.get("round", 0)))


def run_view(run_dir: Path, groups: list[GroupView]) -> RunView:
    state = _read_json(run_dir / STATE)
    state = state if isinstance(state, dict) else {}
    metrics = read_metrics(run_dir)
    return RunView(
        stages=stages(state, metrics, groups),
        curves=curves(metrics),
        rounds=round_reports(run_dir),
        notes=[str(n) for n in state.get("notes", [])],
    )
