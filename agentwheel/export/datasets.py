"""Exports of task datasets for other tools.

- `export_parquet`: one row per task, flat columns plus the whole task as JSON; loads
  with `datasets.load_dataset("parquet", data_files=...)` or pandas.
- `export_verl`: verl's RL parquet layout, loaded by its `RLHFDataset` — chat `prompt`
  messages, `data_source`, `ability`, `reward_model`, the `agent_name` of our agent loop
  (`agentwheel.integrations.verl`), and in `extra_info` the task itself as JSON: what our
  environment, user simulator and reward need on a remote worker
  (`task_from_verl_extra_info` reads it back). The loop scores each episode from the
  environment's state; `reward_model` only records the expected state, for reading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
            "task_json": task.model_dump_json(),
        },
    }


def task_from_verl_extra_info(extra_info: Mapping[str, Any]) -> Task:
    """The task a `verl_row` carries, from the row's `extra_info` as verl hands it over."""
    if "task_json" not in extra_info:
        raise ValueError(
            "extra_info has no task_json: the row was not written by agentwheel's verl export"
        )
    return Task.model_validate_json(extra_info["task_json"])


def export_verl(tasks: Sequence[Task], path: Path, split: str = "train") -> Path:
    return _write([verl_row(t, i, split) for i, t in enumerate(tasks)], path)
