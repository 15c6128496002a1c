"""The page data built from a run directory: stages, episode sets, reward components and
the state diff found by replaying a failed SQLite episode."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.view.html import decode_page_data, encode_blocks, render_page
from agentwheel.view.page_data import EpisodeView, PageData, Turn
from tests.view.conftest import PAYLOAD


def episode(data: PageData, stage: str, task: str) -> EpisodeView:
    group = next(i for i, g in enumerate(data.groups) if g.stage == stage)
    return next(e for e in data.episodes if e.group == group and e.task == task)


def test_run_dir_gives_stages_sets_and_curves(page_data):
    data = page_data
    assert data.kind == "run"
    assert [g.label for g in data.groups] == ["base", "after SFT"]
    assert data.run is not None
    assert [(s.name, s.pass1) for s in data.run.stages] == [("base", 18 / 42), ("sft", 1.0)]
    assert data.run.stages[0].by_kind["happy"] == 0.0
    assert data.run.stages[0].by_kind["refuse"] == 1.0
    reward = next(c for c in data.run.curves if c.key == "rollout_reward_mean")
    assert [p[1] for p in reward.points] == [0.2, 0.4, 0.2 * 3]
    assert [r["round"] for r in data.run.rounds] == [1]
    assert len(data.episodes) == 84 and not data.warnings
    # Each policy text is stored once, not once per episode.
    assert len(data.prompts) == 3


def test_failed_sqlite_episode_shows_the_rows_that_differ(page_data):
    data = page_data
    refused = episode(data, "base", "airline-happy-01")
    assert refused.passed is False and refused.reward["state_matches"] is False
    assert refused.diff is not None
    assert refused.diff.missing_actions == ['cancel_booking:{"booking_ref":"K7M2QX"}']
    booking = next(r for r in refused.diff.rows if r.table == "bookings")
    assert booking.expected is not None and booking.final is not None
    status = booking.columns.index("status")
    assert (booking.expected[status], booking.final[status]) == ("cancelled", "confirmed")
    assert episode(data, "sft", "airline-happy-01").diff is None


def test_hack_background_turn_is_marked(page_data):
    data = page_data
    task = data.tasks["airline-adversarial-01"]
    pushed = episode(data, "base", "airline-adversarial-01")
    assert pushed.hack_turn is not None
    turn = pushed.turns[pushed.hack_turn]
    assert turn.role == "user" and task.user["hack_success_user_background"] in turn.text
    assert episode(data, "sft", "airline-happy-01").hack_turn is None


def test_embedded_json_cannot_close_its_script_block():
    data = PageData(title="t", source="s", kind="eval", created="now")
    data.episodes.append(
        EpisodeView(
            group=0,
            task="x",
            trial=0,
            domain="d",
            workflow="w",
            kind="happy",
            policy="p",
            backend="mock",
            passed=False,
            termination="user_ended",
            turns=[Turn(role="assistant", text=PAYLOAD + "</SCRIPT><!--")],
        )
    )
    for block in encode_blocks(data):
        assert re.fullmatch(r"[A-Za-z0-9+/=]+", block)  # base64: no `<` to close a block with
    page = render_page(data)
    assert page.count("</script>") == 3  # the two data blocks' and the script's own
    assert decode_page_data(page)["episodes"][0]["turns"][0]["text"] == PAYLOAD + "</SCRIPT><!--"


def test_cli_writes_the_page_and_rejects_what_is_not_a_run(run_dir, tmp_path):
    out = tmp_path / "page.html"
    result = CliRunner().invoke(app, ["view", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert len(decode_page_data(out.read_text())["episodes"]) == 84
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["view", str(empty)])
    assert result.exit_code == 1 and "error:" in result.output and "traces.jsonl" in result.output
    result = CliRunner().invoke(app, ["view", str(out)])
    assert result.exit_code == 1 and "not a directory" in result.output


def test_task_directory_lists_its_tasks():
    from agentwheel.core.dataset import BUNDLED_DATA
    from agentwheel.view.build import build_page_data

    data = build_page_data(BUNDLED_DATA / "fixtures")
    assert data.kind == "tasks" and len(data.episodes) == 42 and len(data.tasks) == 42
    assert all(e.passed is None and not e.turns for e in data.episodes)
    assert data.tasks["airline-happy-01"].normal_path[0]["tool"] == "get_booking"


def test_serve_answers_on_loopback_only():
    import threading

    import httpx

    from agentwheel.view.serve import page_server

    server = page_server("<!DOCTYPE html><p>page</p>")
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "<!DOCTYPE html><p>page</p>"
        assert httpx.get(f"http://127.0.0.1:{port}/traces.jsonl").status_code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_building_a_page_imports_no_torch_and_no_trainer():
    import subprocess
    import sys

    code = (
        "import sys, agentwheel.view.build, agentwheel.view.html;"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('agentwheel.train')];"
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
