import json

from agentwheel.flywheels.reasoning.seeds import load_seed_file
from agentwheel.flywheels.reasoning.synth import synth_reasoning


def test_synth_checks_dedups_and_writes_a_manifest(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "7"},
                {"question": "Tom has 3 apples and buys 4 more.  How many?", "answer": "7"},
                {"question": "What is the color of the sky?", "answer": "a lovely blue"},
                {"question": "missing answer"},
            ]
        )
        + "\n"
    )
    out = tmp_path / "out"
    manifest = synth_reasoning(seeds, out)
    assert manifest["counts"]["kept"] == 1 and manifest["counts"]["load_errors"] == 1
    assert manifest["rejections"] == {
        "duplicate": {"same question": 1},
        "load": {"answer": 1},
        "seed_check": {"answer not checkable": 1},
    }
    assert [p.id for p in load_seed_file(out / "problems.jsonl").problems] == ["seeds-1"]
    assert len((out / "rejections.jsonl").read_text().splitlines()) == 3
    assert json.loads((out / "manifest.json").read_text())["counts"] == manifest["counts"]


def test_a_rerun_skips_checked_seeds(tmp_path):
    out = tmp_path / "out"
    first = synth_reasoning("gym:chain_sum:4", out)
    again = synth_reasoning("gym:chain_sum:4", out)
    assert first["resumed_items"] == 0 and again["resumed_items"] == 4
    assert again["counts"] == first["counts"]
