"""The page as one self-contained HTML file: the template, its CSS and script inline, and
the data as a JSON block the script reads.

Safety: the data goes into a `<script type="application/json">` block with every `<`
written as `\\u003c`, so no episode text can close the block or open a tag; the script
renders text with `textContent` only; and the page's Content-Security-Policy allows no
script but its own (by hash), so even markup that slipped through could not run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from importlib import resources

from agentwheel.view.page_data import PageData

ASSETS = resources.files("agentwheel.view") / "assets"


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def embed_json(data: PageData) -> str:
    """The data as JSON that is inert inside a script element."""
    text = json.dumps(data.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))
    # U+2028/2029 are valid in JSON; escaped anyway so the block is plain ASCII-safe JS text.
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def render_page(data: PageData) -> str:
    """The whole page. Placeholders are filled data last, so text in the data that looks
    like a placeholder stays text."""
    script = _asset("page.js")
    page = _asset("page.html")
    page = page.replace("__SCRIPT_HASH__", script_hash(script))
    page = page.replace("__TITLE__", html.escape(data.title))
    page = page.replace("__CSS__", _asset("page.css"))
    head, tail = page.split("__JS__")
    head = head.replace("__DATA__", embed_json(data))
    return head + script + tail
