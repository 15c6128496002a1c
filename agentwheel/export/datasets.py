"""Exports of task datasets for other tools.

- `export_parquet`: one row per task, flat columns plus the whole task as JSON; loads
  with `datasets.load_dataset("parquet", data_files=...)` or pandas.
- `export_verl`: verl's RL parquet layout — chat `prompt` messages, `data_source`,
  `ability`, `reward_model`, an `agent_name` for its agent loop, and in `extra_info` the
  per-sample environment arguments (the task itself) that our environment, user simulator
  and reward need on a remote worker.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from agentwheel.core.atomic import write_with
from agentwheel.core.task import Task
from agentwheel.envs.reward import expected_state
from agentwheel.envs.tools import Backend

VERL_AGENT_NAME = "agentwheel_agent"


def _write(rows: list[dict[str, Any]], path: Path) -> Path:
    return write_with(path, lambda tmp: pq.write_table(pa.Table.from_pylist(rows), tmp))


def parquet_row(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "domain": task.domain,
        "branch_kind": task.branch_kind,
        "request": task.user.request,
        "instruction": task.instruction,
        "tools": json.dumps([t.model_dump() for t in task.tools]),
        "backend": "sqlite" if task.sqlite is not None else "mock",
        "source_workflow": task.lineage.source_workflow,
        "round": task.lineage.round,
        "task_json": task.model_dump_json(),
    }


def export_parquet(tasks: Sequence[Task], path: Path) -> Path:
    return _write([parquet_row(t) for t in tasks], path)


def verl_row(task: Task, index: int, split: str) -> dict[str, Any]:
    backend: Backend = "sqlite" if task.sqlite is not None else "mock"
    return {
        "data_source": f"agentwheel/{task.domain}",
        "agent_name": VERL_AGENT_NAME,
        "prompt": [
            {"role": "system", "content": task.instruction},
            {"role": "user", "content": task.user.request},
        ],
        "ability": "agentic_tool_use",
        "reward_model": {
            "style": "agentwheel_state",
            "ground_truth": expected_state(task, backend),
        },
        "extra_info": {
            "split": split,
            "index": index,
            "task_id": task.id,
            "branch_kind": task.branch_kind,
            "backend": backend,
            "tools": json.dumps([t.openai_schema() for t in task.tools]),
            "task_json": task.model_dump_json(),
        },
    }


def export_verl(tasks: Sequence[Task], path: Path, split: str = "train") -> Path:
    return _write([verl_row(t, i, split) for i, t in enumerate(tasks)], path)
