"""The page as one self-contained HTML file: the template, its CSS and script inline, and
the data in two blocks the script reads: what the episode list needs, then each episode's
turns, reward and diff (decoded after the list is drawn, so a large run shows at once).

The data is JSON, gzipped and base64-encoded: a 10,000-episode run is a tenth of the size
(it loads faster and can be mailed), and the base64 alphabet has no `<`, so no episode
text can close a block or open a tag. The script renders text with `textContent` only,
and the page's Content-Security-Policy allows no script but its own (by hash), so even
markup that slipped through could not run.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import re
from importlib import resources
from typing import Any

from agentwheel.view.page_data import PageData

ASSETS = resources.files("agentwheel.view") / "assets"
# Per-episode fields that go in the second block: only an open episode or a search needs them.
DETAIL_FIELDS = ("turns", "reward", "counts", "timings", "diff", "error", "hack_turn")


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _encode(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=6)).decode("ascii")


def _decode(block: str) -> Any:
    return json.loads(gzip.decompress(base64.b64decode(block)))


def encode_blocks(data: PageData) -> tuple[str, str]:
    """The two data blocks (base64 of gzipped JSON): the page without the episodes' detail
    fields, and those fields per episode, in the same order."""
    payload = data.model_dump(mode="json")
    details = [{k: e.pop(k) for k in DETAIL_FIELDS} for e in payload["episodes"]]
    return _encode(payload), _encode(details)


def _block(page: str, block_id: str) -> str:
    match = re.search(rf'<script id="{block_id}"[^>]*>([A-Za-z0-9+/=]*)</script>', page)
    if match is None:
        raise ValueError(f"not an agentwheel view page: no {block_id} block")
    return match.group(1)


def decode_page_data(page: str) -> dict[str, Any]:
    """The data a page carries, episodes whole again (for tests and tools reading a page)."""
    data: dict[str, Any] = _decode(_block(page, "page-data"))
    for episode, details in zip(
        data["episodes"], _decode(_block(page, "page-details")), strict=True
    ):
        episode.update(details)
    return data


def script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def render_page(data: PageData) -> str:
    """The whole page. The data goes in last, so nothing in it is taken for a placeholder."""
    script = _asset("page.js")
    page = _asset("page.html")
    page = page.replace("__SCRIPT_HASH__", script_hash(script))
    page = page.replace("__TITLE__", html.escape(data.title))
    page = page.replace("__CSS__", _asset("page.css"))
    head, tail = page.split("__JS__")
    index, details = encode_blocks(data)
    head = head.replace("__DATA__", index).replace("__DETAILS__", details)
    return head + script + tail
