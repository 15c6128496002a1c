"""The page as one self-contained HTML file: the template, its CSS and script inline, and
the data as a block the script reads.

The data is JSON, gzipped and base64-encoded: a 10,000-episode run is a tenth of the size
(it loads faster and can be mailed), and the base64 alphabet has no `<`, so no episode
text can close the block or open a tag. The script renders text with `textContent` only,
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
_DATA_BLOCK = re.compile(r'<script id="page-data"[^>]*>([A-Za-z0-9+/=]*)</script>')


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def encode_data(data: PageData) -> str:
    """The page data as base64 of gzipped JSON (what the data block holds)."""
    text = json.dumps(data.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=6)).decode("ascii")


def decode_page_data(page: str) -> dict[str, Any]:
    """The data a page carries, as JSON (for tests and tools that read a page back)."""
    match = _DATA_BLOCK.search(page)
    if match is None:
        raise ValueError("not an agentwheel view page: no data block")
    data: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(match.group(1))))
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
    head = head.replace("__DATA__", encode_data(data))
    return head + script + tail
