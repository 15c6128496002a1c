"""Screenshots of `agentwheel view` for the README: the run overview, and a failed held-out
episode found the way a person would (the stage's link, outcome "failed", the first row).

    python scripts/view_screenshots.py <run or eval dir> [--out docs/img]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.view.chromium

from agentwheel.view.build import build_page_data
from agentwheel.view.html import render_page
from tests.view.chromium import Chromium, find_chromium

CLICK_FIRST_STAGE = "document.querySelector('#tab-run tbody a').click()"
SHOW_FAILED = (
    "(() => { const s = document.getElementById('filter-outcome'); s.value = 'failed';"
    " s.dispatchEvent(new Event('change')); })()"
)
OPEN_FIRST_ROW = "document.querySelector('#list .row').click()"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--prefix", default="view")
    args = parser.parse_args()
    binary = find_chromium()
    if binary is None:
        sys.exit("error: no chromium on PATH (scripts/setup.sh installs Debian's package)")
    data = build_page_data(args.directory)
    with tempfile.TemporaryDirectory() as tmp, Chromium(binary, width=1440, height=900) as browser:
        page = Path(tmp) / "view.html"
        page.write_text(render_page(data), encoding="utf-8")
        browser.open(page.as_uri())
        browser.wait_for("document.body.dataset.ready && document.body.dataset.details")
        if data.run is not None:
            print(browser.screenshot(args.out / f"{args.prefix}_run.png"))
            browser.eval(CLICK_FIRST_STAGE)
        else:
            browser.eval("document.getElementById('tabbtn-episodes').click()")
        browser.eval(SHOW_FAILED)
        browser.eval(OPEN_FIRST_ROW)
        print(browser.screenshot(args.out / f"{args.prefix}_episode.png"))
        if browser.errors:
            sys.exit(f"error: console errors on the page: {browser.errors}")


if __name__ == "__main__":
    main()
