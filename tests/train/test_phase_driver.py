"""The resumable phase driver shared by a training run and a study."""

from __future__ import annotations

import pytest

from agentwheel.train.phase_driver import run_phases


def test_phases_done_are_skipped_and_a_failed_one_is_reported_unfinished():
    ran: list[str] = []
    ended: list[tuple[str, bool]] = []

    def fail() -> None:
        ran.append("c")
        raise RuntimeError("killed")

    phases = [("a", lambda: ran.append("a")), ("b", lambda: ran.append("b")), ("c", fail)]
    phases.append(("d", lambda: ran.append("d")))
    with pytest.raises(RuntimeError, match="killed"):
        run_phases(phases, {"a"}, lambda name, ok, _: ended.append((name, ok)), lambda _: None)
    assert ran == ["b", "c"]
    assert ended == [("b", True), ("c", False)]
