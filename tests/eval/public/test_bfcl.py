"""`agentwheel bench bfcl` without the heavy virtualenv: the subset, the commands and
environment bfcl-eval is driven with, and the official score files read back (a sample
saved from a real run, `samples/bfcl/`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agentwheel.eval.public import bfcl

SAMPLE = Path(__file__).parent / "samples" / "bfcl"


def data_dir(tmp_path: Path, counts: dict[str, int]) -> Path:
    """bfcl-eval's data layout: one JSON object per line, ids `<category>_<i>`."""
    root = tmp_path / "data"
    root.mkdir()
    for category, count in counts.items():
        lines = [json.dumps({"id": f"{category}_{i}", "question": [[]]}) for i in range(count)]
        (root / f"BFCL_v4_{category}.json").write_text("\n".join(lines) + "\n")
    return root


def a_run(tmp_path: Path, **fields) -> bfcl.BfclRun:
    return bfcl.BfclRun(base_url="http://127.0.0.1:9/v1", model_dir=tmp_path / "ckpt", **fields)


def test_the_subset_is_the_first_n_entries_of_each_category(tmp_path):
    root = data_dir(tmp_path, {"multi_turn_base": 5, "multi_turn_miss_func": 2})
    chosen = bfcl.subset_ids(root, ["multi_turn_base", "multi_turn_miss_func"], limit=3)
    assert chosen == {
        "multi_turn_base": ["multi_turn_base_0", "multi_turn_base_1", "multi_turn_base_2"],
        "multi_turn_miss_func": ["multi_turn_miss_func_0", "multi_turn_miss_func_1"],
    }


def test_a_category_without_data_is_named(tmp_path):
    root = data_dir(tmp_path, {"multi_turn_base": 1})
    with pytest.raises(bfcl.BfclDataMissing, match="no data for multi_turn_long_context"):
        bfcl.subset_ids(root, ["multi_turn_base", "multi_turn_long_context"], limit=1)


def test_generate_asks_the_served_model_through_the_local_model_handler(tmp_path):
    run = a_run(tmp_path, limit=2, categories=("multi_turn_base",), num_threads=4)
    command = bfcl.generate_command(Path("/venv/bin/bfcl"), run)
    assert command[:2] == ["/venv/bin/bfcl", "generate"]
    assert command[command.index("--model") + 1] == "Qwen/Qwen3-8B-FC"
    assert "--skip-server-setup" in command
    # the tokenizer is read from, and the model requested by, the local directory
    assert command[command.index("--local-model-path") + 1] == str(tmp_path / "ckpt")
    assert command[command.index("--num-threads") + 1] == "4"
    assert "--run-ids" in command  # a subset comes from the ids file
    assert "--partial-eval" in bfcl.evaluate_command(Path("bfcl"), run)


def test_the_full_sets_need_no_ids_file_and_no_partial_evaluation(tmp_path):
    run = a_run(tmp_path)
    generate = bfcl.generate_command(Path("bfcl"), run)
    evaluate = bfcl.evaluate_command(Path("bfcl"), run)
    assert "--run-ids" not in generate
    assert "--partial-eval" not in evaluate
    categories = evaluate[evaluate.index("--test-category") + 1]
    assert categories.split(",") == list(bfcl.MULTI_TURN_CATEGORIES)


def test_the_tool_runs_offline_in_the_run_directory(tmp_path):
    run = a_run(tmp_path)
    env = bfcl.tool_environment(run, tmp_path / "out")
    assert env["BFCL_PROJECT_ROOT"] == str((tmp_path / "out").resolve())
    assert env["REMOTE_OPENAI_BASE_URL"] == "http://127.0.0.1:9/v1"
    assert env["HF_HUB_OFFLINE"] == "1"


def test_percent_cells():
    assert bfcl.percent("12.50%") == pytest.approx(0.125)
    assert bfcl.percent("N/A") is None


def test_the_report_reads_the_official_score_files(tmp_path):
    """The sample: bfcl-eval's own score files from a real run (2 entries per category,
    a scripted server; the score files keep only their header line)."""
    out = tmp_path / "out"
    shutil.copytree(SAMPLE, out)
    run = a_run(tmp_path, limit=2)
    report = bfcl.write_report(run, out, {"generate": 1.0, "evaluate": 2.0})
    assert set(report.categories) == set(bfcl.MULTI_TURN_CATEGORIES)
    for score in report.categories.values():
        assert (score.accuracy, score.correct, score.total) == (0.0, 0, 2)
    assert report.multi_turn_overall == 0.0
    assert report.score_table == out / "score" / "data_multi_turn.csv"
    saved = json.loads((out / bfcl.REPORT_FILE).read_text())
    assert saved["limit"] == 2
    assert saved["wall_s"] == {"generate": 1.0, "evaluate": 2.0}


def test_each_category_gets_its_own_score(tmp_path):
    """The same files with distinct numbers, so a mix-up between categories shows."""
    out = tmp_path / "out"
    shutil.copytree(SAMPLE, out)
    scores = out / "score" / "Qwen_Qwen3-8B-FC" / "multi_turn"
    for i, category in enumerate(bfcl.MULTI_TURN_CATEGORIES):
        header = {"accuracy": i / 4, "correct_count": i, "total_count": 4}
        (scores / f"BFCL_v4_{category}_score.json").write_text(json.dumps(header) + "\n")
    table = out / "score" / "data_multi_turn.csv"
    table.write_text(
        "Rank,Model,Multi Turn Overall Acc,Base,Miss Func,Miss Param,Long Context\n"
        "1,Qwen3-8B (FC),37.50%,0.00%,25.00%,50.00%,75.00%"
    )
    report = bfcl.write_report(a_run(tmp_path, limit=4), out, {})
    assert [report.categories[c].correct for c in bfcl.MULTI_TURN_CATEGORIES] == [0, 1, 2, 3]
    assert report.categories["multi_turn_long_context"].accuracy == 0.75
    assert report.multi_turn_overall == pytest.approx(0.375)
    assert bfcl.table_rows(report)[-1] == ("multi-turn overall", "37.5%")


def test_a_category_left_out_is_absent_not_zero(tmp_path):
    out = tmp_path / "out"
    shutil.copytree(SAMPLE, out)
    (
        out / "score" / "Qwen_Qwen3-8B-FC" / "multi_turn" / "BFCL_v4_multi_turn_base_score.json"
    ).unlink()
    report = bfcl.write_report(a_run(tmp_path, limit=2), out, {})
    assert "multi_turn_base" not in report.categories
    assert dict(bfcl.table_rows(report))["multi_turn_base"] == "–"
