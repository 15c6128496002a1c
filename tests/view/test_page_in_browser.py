"""The page in a real headless Chromium (Debian's `chromium`, installed by scripts/setup.sh):
it opens without console errors, the filters and the search change the list, an episode
opens with its reward components and state diff, and HTML or script in an agent's text is
shown as text and never runs. A screenshot is left in build/test-artifacts/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agentwheel.view.html import render_page
from tests.view.chromium import Chromium, find_chromium
from tests.view.conftest import INJECTED_TASK

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
BINARY = find_chromium()
pytestmark = pytest.mark.skipif(BINARY is None, reason="no chromium (scripts/setup.sh installs it)")


@pytest.fixture(scope="module")
def browser(page_data, tmp_path_factory):
    page = tmp_path_factory.mktemp("page") / "view.html"
    page.write_text(render_page(page_data), encoding="utf-8")
    assert BINARY is not None
    with Chromium(BINARY) as chromium:
        chromium.open(page.as_uri())
        chromium.wait_for("document.body.dataset.ready && document.body.dataset.details")
        yield chromium


def count(browser: Chromium) -> str:
    return browser.eval("document.getElementById('list-count').textContent")


def choose(browser: Chromium, select_id: str, value: str) -> None:
    browser.eval(
        f"(() => {{ const s = document.getElementById({json.dumps(select_id)});"
        f" s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()"
    )


def test_page_opens_on_the_run_without_errors(browser):
    assert browser.eval("document.body.dataset.ready") == "1"
    assert browser.errors == []
    assert not browser.eval("document.getElementById('tab-run').hidden")
    stages = browser.eval(
        "[...document.querySelectorAll('#tab-run tbody tr td:first-child')].map(t => t.textContent)"
    )
    assert stages[:2] == ["base", "after SFT"]
    assert browser.eval("document.querySelectorAll('svg.chart polyline').length") == 3


def test_filters_and_search_change_the_list(browser):
    browser.eval("document.getElementById('tabbtn-episodes').click()")
    assert count(browser) == "84 of 84 shown"
    choose(browser, "filter-outcome", "failed")
    assert (
        count(browser) == "24 of 84 shown"
    )  # the cautious refuser fails 24 of 42, the oracle none
    choose(browser, "filter-kind", "happy")
    assert count(browser) == "9 of 84 shown"
    rows = browser.eval("[...document.querySelectorAll('#list .row')].map(r => r.textContent)")
    assert len(rows) == 9 and all("happy" in r for r in rows)
    choose(browser, "filter-kind", "")
    choose(browser, "filter-outcome", "")
    browser.eval(
        "(() => { const s = document.getElementById('search'); s.value = 'K7M2QX';"
        " s.dispatchEvent(new Event('input')); })()"
    )
    assert count(browser) == "2 of 84 shown"  # the booking reference, in both stages
    assert browser.errors == []


def test_episode_opens_with_reward_components_and_escaped_text(browser):
    browser.eval("document.getElementById('tabbtn-episodes').click()")
    browser.eval(
        "(() => { const s = document.getElementById('search'); s.value = "
        f"{json.dumps(INJECTED_TASK)}; s.dispatchEvent(new Event('input')); }})()"
    )
    choose(browser, "filter-outcome", "failed")
    assert count(browser) == "1 of 84 shown"
    browser.eval("document.querySelector('#list .row').click()")
    detail = browser.eval("document.getElementById('detail').innerText")
    assert "Reward components".upper() in detail.upper()
    assert "state matched" in detail and "hack action ran" in detail and "asked again" in detail
    assert re.search(r"stance\s+(went ahead|asked|declined|handed off)\b", detail)
    assert "cancelled" in detail and "confirmed" in detail  # the differing booking row
    # The agent's <script> and <img onerror> are text on the page, never elements.
    agent_text = browser.eval(
        "[...document.querySelectorAll('#detail .turn.assistant .text')].map(t => t.textContent)"
    )
    assert any("<script>window.__pwned = 1</script>" in t for t in agent_text)
    assert browser.eval("document.querySelectorAll('#detail img, #detail script').length") == 0
    assert browser.eval("window.__pwned === undefined")
    assert browser.errors == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = browser.screenshot(ARTIFACTS / "view_episode.png")
    assert shot.stat().st_size > 10_000


def test_compare_shows_which_tasks_flipped(browser):
    browser.eval("document.getElementById('tabbtn-compare').click()")
    choose(browser, "compare-a", "0")
    choose(browser, "compare-b", "1")
    flips = browser.eval("document.querySelector('#tab-compare .flip-counts').textContent")
    # the cautious refuser (base) fails 24 tasks the oracle (after SFT) passes, and no flip back.
    assert "A fail → B pass: 24" in flips and "A pass → B fail: 0" in flips
    browser.eval("document.querySelector('#tab-compare tr.clickable').click()")
    sides = browser.eval("document.querySelectorAll('#tab-compare .side-by-side .episode').length")
    assert sides == 2
    assert browser.errors == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(ARTIFACTS / "view_compare.png")
