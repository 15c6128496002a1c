import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agentwheel.flywheels.reasoning.generators import exact_check
from agentwheel.flywheels.reasoning.seeds import BUNDLED_DIR, load_seed_file, load_seeds


def _write_jsonl(path, lines):
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def test_common_layouts_load(tmp_path):
    path = _write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
            {"question": "Sum of 1,000 and 234?", "answer": "#### 1,234"},
            {"problem": "Compute $1/2 + 1/4$.", "solution": "We get $\\boxed{\\frac{3}{4}}$."},
            {"problem": "Compute 2+2.", "solution": "It is 4.", "answer": "4", "level": "Level 1"},
            {"id": "mine", "question": "What is 6*7?", "answer": 42, "source": "ours"},
        ],
    )
    loaded = load_seed_file(path)
    assert loaded.errors == []
    answers = [p.answer for p in loaded.problems]
    assert answers == ["7", "1234", "\\frac{3}{4}", "4", "42"]
    assert [p.id for p in loaded.problems][:2] == ["mixed-1", "mixed-2"]
    assert loaded.problems[4].id == "mine" and loaded.problems[4].source == "ours"
    assert loaded.problems[3].meta == {"level": "Level 1"}
    assert all(p.lineage.operator == "seed" and p.lineage.round == 0 for p in loaded.problems)


def test_bad_lines_name_file_line_and_field(tmp_path):
    path = _write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"question": "ok?", "answer": "1"},
            {"answer": "2"},
            {"question": "", "answer": "2"},
            {"question": "Q?", "answer": ["x"]},
            {"problem": "Q?", "solution": "no final answer here"},
            "{not json",
            {"question": "Q?", "answer": "1", "lineage": {"round": -1}},
        ],
    )
    loaded = load_seed_file(path)
    assert len(loaded.problems) == 1
    where = [(e.line, e.field) for e in loaded.errors]
    assert where == [
        (2, "question"),
        (3, "question"),
        (4, "answer"),
        (5, "solution"),
        (6, ""),
        (7, "lineage.round"),
    ]
    assert all(e.file == str(path) for e in loaded.errors)
    assert "invalid JSON" in loaded.errors[4].message
    assert str(loaded.errors[0]).startswith(f"{path}:2: question: missing")


def test_parquet_rows_load_and_errors_name_the_row(tmp_path):
    path = tmp_path / "math.parquet"
    table = pa.table(
        {
            "problem": ["What is 1+1?", "What is 2+2?"],
            "solution": ["So $\\boxed{2}$.", "I forgot to box it: 4"],
        }
    )
    pq.write_table(table, path)
    loaded = load_seed_file(path)
    assert [p.answer for p in loaded.problems] == ["2"]
    assert [(e.line, e.field) for e in loaded.errors] == [(2, "solution")]


def test_bundled_seeds_are_handwritten_and_exact_procedural():
    seeds = load_seeds("bundled")
    assert seeds.errors == []
    handwritten = [p for p in seeds.problems if not p.procedural]
    procedural = [p for p in seeds.problems if p.procedural]
    assert len(handwritten) >= 20
    assert {p.generator.name for p in procedural} >= {"chain_sum", "gsm_symbolic", "knights_knaves"}
    assert all(exact_check(p) is None for p in procedural)
    assert (BUNDLED_DIR / "seeds.jsonl").exists()


def test_generator_spec_and_unknown_generator():
    seeds = load_seeds("gym:chain_sum:3", seed=1)
    assert [p.generator.index for p in seeds.problems] == [0, 1, 2]
    assert load_seeds("gym:chain_sum:3", seed=1) == seeds  # deterministic
    with pytest.raises(ValueError, match="no_such_generator"):
        load_seeds("gym:no_such_generator")


def test_a_plan_reports_a_rejected_generator_as_a_load_error(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "sources:\n"
        "  - generator: chain_sum\n    count: 2\n"
        "  - generator: chain_sum\n    count: 2\n    params: {min_terms: 5, max_terms: 2}\n"
    )
    seeds = load_seeds(plan)
    assert len(seeds.problems) == 2
    assert [(e.line, e.field) for e in seeds.errors] == [(2, "sources.1.generator")]


def test_a_missing_path_is_an_error():
    with pytest.raises(FileNotFoundError):
        load_seeds("/nonexistent/seeds.jsonl")
