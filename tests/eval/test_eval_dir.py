"""An eval directory has one writer and one task set: a second `eval --resume` on the
same `--out` stops at once, and `--resume` with other tasks refuses to mix them in."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.core.dir_lock import directory_lock
from agentwheel.eval.evaluate import TRACES

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[2] / "agentwheel" / "data" / "fixtures"
RETAIL, AIRLINE = str(FIXTURES / "retail.jsonl"), str(FIXTURES / "airline.jsonl")


def run_eval(out, tasks: str = RETAIL, *extra: str):
    args = ["eval", "--policy", "oracle", "--tasks", tasks, "--limit", "2", "--out", str(out)]
    return runner.invoke(app, [*args, *extra])


def trace_lines(out) -> list[str]:
    return [json.loads(line)["task_id"] for line in (out / TRACES).read_text().splitlines()]


def test_a_second_eval_on_a_directory_in_use_fails_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    assert run_eval(out).exit_code == 0
    before = (out / TRACES).read_text()
    with directory_lock(out):  # another process's eval, as far as the CLI can tell
        busy = run_eval(out, RETAIL, "--resume", "--limit", "3")
    assert busy.exit_code == 1, busy.output
    text = " ".join(busy.output.split())
    assert "error:" in text and "in use by another run" in text
    assert (out / TRACES).read_text() == before
    resumed = run_eval(out, RETAIL, "--resume", "--limit", "3")
    assert resumed.exit_code == 0, resumed.output
    assert len(trace_lines(out)) == 3


def test_resume_with_another_task_set_is_refused(tmp_path):
    out = tmp_path / "run"
    assert run_eval(out, RETAIL).exit_code == 0
    before = trace_lines(out)
    other = run_eval(out, AIRLINE, "--resume")
    assert other.exit_code == 1, other.output
    text = " ".join(other.output.split())
    assert "error:" in text and "not in this task set" in text
    assert trace_lines(out) == before
