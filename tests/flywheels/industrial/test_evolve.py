import json

from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.core.dataset import load_tasks
from agentwheel.flywheels.industrial.search_tasks import HARDER
from agentwheel.flywheels.industrial.synth import evolve_search


def test_failed_search_tasks_come_back_harder_and_gated():
    tasks = [t for t in load_tasks("search-fixtures").tasks if t.lineage.branch in HARDER]
    kept, _ = evolve_search(tasks, round_=2)
    assert len(kept) >= len(tasks) - 2
    for variant in kept:
        parent = next(t for t in tasks if t.id == variant.lineage.parent_id)
        assert variant.lineage.branch == HARDER[parent.lineage.branch]
        assert variant.lineage.round == 2 and variant.lineage.operator.startswith("harder:")
        hops = len(variant.evaluation.answer.evidence_docs)
        more_hops = hops > len(parent.evaluation.answer.evidence_docs)
        assert more_hops or variant.evaluation.answer.kind == "absent"


def test_evolve_cli_reads_an_eval_run(tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    args = ["eval", "--tasks", "search-fixtures", "--policy", "blind", "--no-validate"]
    assert runner.invoke(app, [*args, "--out", str(run)]).exit_code == 0
    out = tmp_path / "harder"
    command = [
        "evolve",
        "search",
        "--tasks",
        "search-fixtures",
        "--run",
        str(run),
        "--out",
        str(out),
    ]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    lines = (out / "tasks.jsonl").read_text().splitlines()
    assert len(lines) >= 8
    assert all(json.loads(line)["lineage"]["parent_id"] for line in lines)
