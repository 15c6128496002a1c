"""Generating a world's rows costs work in proportion to its rows: a 10,000-row table
once took `synth` past two minutes (each new row was compared with every row before it,
and each reference rebuilt the list of its parent's keys)."""

from __future__ import annotations

import cProfile
import pstats
import random

from agentwheel.flywheels.agentic.workflow_loader import parse_workflow
from agentwheel.flywheels.agentic.world import generate_rows, make_faker
from tests.flywheels.small_workflow import small_data


def work_for(loans: int) -> tuple[int, dict[str, int]]:
    """Function calls made generating a world with `loans` loans (a tenth as many members),
    and the rows made per table."""
    data = small_data()
    data["tables"]["loans"]["rows"] = loans
    data["tables"]["members"]["rows"] = loans // 10
    workflow = parse_workflow(data)
    profiler = cProfile.Profile()
    tables = profiler.runcall(generate_rows, workflow, random.Random(0), make_faker(0), set())
    return pstats.Stats(profiler).total_calls, {t: len(rows) for t, rows in tables.items()}  # type: ignore[attr-defined]


def test_row_generation_is_linear_in_rows():
    small, small_rows = work_for(500)
    large, large_rows = work_for(4000)
    assert small_rows["loans"] == 500 and large_rows["loans"] == 4000
    assert large_rows["members"] == 400
    # 8x the rows: 8x the calls for linear work, 64x for quadratic.
    assert large < 10 * small, (small, large)
