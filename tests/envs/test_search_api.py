"""The live search adapter (`api:<config.yaml>`) against a real HTTP server on loopback:
search and open work, and every failure (timeout, a trickled body, bad JSON, HTTP 500,
a body over the cap, an address no search returned) is a clear tool error, not a crash."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.core.industrial import SearchWorld
from agentwheel.envs.search import OPEN, SEARCH, SEARCH_TOOLS, SearchTools
from agentwheel.envs.search_api import html_text, load_search_api_config
from agentwheel.envs.tools import is_tool_error

PAGE = (
    "<html><head><title>Refund policy</title><style>p{}</style></head><body>"
    "<script>alert('x')</script><p>Refunds take <b>14</b> days.</p></body></html>"
)


class _Handler(BaseHTTPRequestHandler):
    seen_auth: ClassVar[list[str | None]] = []

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        type(self).seen_auth.append(self.headers.get("Authorization"))
        path = self.path.split("?")[0]
        port = self.server.server_address[1]
        try:
            if path == "/search":
                results = [
                    {
                        "title": "Refunds",
                        "url": f"http://127.0.0.1:{port}/page",
                        "content": "14 days",
                    },
                    {"title": "no url"},
                    {"title": "Shipping", "url": f"http://127.0.0.1:{port}/other", "content": "x"},
                ]
                self._send(200, json.dumps({"results": results}).encode(), "application/json")
            elif path == "/page":
                self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/slow":
                time.sleep(3)
                self._send(200, b"{}", "application/json")
            elif path == "/trickle":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(60):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.05)
            elif path == "/bad":
                self._send(200, b"<html>not json</html>", "text/html")
            elif path == "/fail":
                body = json.dumps({"error": {"message": "index is down"}}).encode()
                self._send(500, body, "application/json")
            elif path == "/bomb":
                self._send(
                    200,
                    gzip.compress(b" " * 5_000_000),
                    "application/json",
                    Content_Encoding="gzip",
                )
            else:
                self._send(404, b"", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _tools(tmp_path: Path, base_url: str, name: str, **config) -> SearchTools:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"base_url": base_url, "timeout_s": 0.5, **config}))
    return SearchTools(SearchWorld(collection=f"api:{path}"))


def test_search_and_open_a_page_it_returned(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SEARCH_KEY", "sk-test")
    tools = _tools(tmp_path, server, "ok", api_key_env="TEST_SEARCH_KEY")
    _Handler.seen_auth.clear()
    hits = tools.call(SEARCH, {"query": "refund policy", "k": 5})
    assert [h["title"] for h in hits] == [
        "Refunds",
        "Shipping",
    ]  # the result without a url is dropped
    assert hits[0]["snippet"] == "14 days"
    page = tools.call(OPEN, {"doc_id": hits[0]["doc_id"]})
    assert page["title"] == "Refund policy"
    assert page["text"] == "Refunds take 14 days."  # no script, no style
    # The key goes to the search service only, never to a page the agent opens.
    assert _Handler.seen_auth == ["Bearer sk-test", None]
    assert tools.call(SEARCH, {"query": "refund", "k": 1})[0]["title"] == "Refunds"


def test_open_fetches_only_urls_a_search_returned(server, tmp_path):
    tools = _tools(tmp_path, server, "ssrf")
    error = tools.call(OPEN, {"doc_id": f"{server}/page"})
    assert error["error"] == "not_found" and "not a url from your searches" in error["detail"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/slow", "no response from 127.0.0.1:"),
        ("/trickle", "did not arrive within 0.5s"),
        ("/bad", "reply is not JSON"),
        ("/fail", "HTTP 500 from 127.0.0.1:"),
        ("/bomb", "over 100,000 bytes"),
        ("/missing", "HTTP 404"),
    ],
)
def test_every_failure_is_a_clear_api_error(server, tmp_path, path, expected):
    # /slow and /trickle take 3 s: left alone they would end in another error (an empty
    # result, a cut body), so the timeout messages show the deadline cut them off.
    tools = _tools(tmp_path, server, path.strip("/"), search_path=path, max_response_bytes=100_000)
    output = tools.call(SEARCH, {"query": "refunds"})
    assert is_tool_error(output) and output["error"] == "api_error"
    assert expected in output["detail"]
    if path == "/fail":
        assert "index is down" in output["detail"]


def test_an_unreachable_service_is_an_api_error(tmp_path):
    tools = _tools(tmp_path, "http://127.0.0.1:9", "closed")
    output = tools.call(SEARCH, {"query": "refunds"})
    assert output["error"] == "api_error" and "could not reach 127.0.0.1:9" in output["detail"]


def test_a_bad_config_names_the_file_and_the_field(tmp_path, monkeypatch):
    path = tmp_path / "bad.yaml"
    path.write_text("base_url: ftp://x\ntimeout: 3\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: base_url: .*http.*; timeout: Extra"):
        load_search_api_config(path)
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    path.write_text("base_url: http://127.0.0.1:9\napi_key_env: NO_SUCH_KEY\n")
    with pytest.raises(ValueError, match=r"\$NO_SUCH_KEY .* not set"):
        SearchTools(SearchWorld(collection=f"api:{path}"))


def test_html_text_keeps_only_what_a_reader_sees():
    assert html_text(PAGE) == ("Refund policy", "Refunds take 14 days.")


def test_eval_scores_live_tasks_answer_only(server, tmp_path):
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump({"base_url": server, "timeout_s": 2}))
    task = {
        "id": "live-1",
        "domain": "search",
        "branch_kind": "happy",
        "instruction": "Answer from the web.",
        "tools": [t.model_dump() for t in SEARCH_TOOLS],
        "user": {"request": "How long do refunds take, in days?"},
        "normal_path": [
            {"tool": "search", "arguments": {"query": "refund policy"}},
            {"tool": "submit_answer", "arguments": {"answer": "14"}},
        ],
        "evaluation": {"answer": {"kind": "number", "value": 14, "tolerance": 0}},
        "search": {"collection": f"api:{config}"},
    }
    tasks = tmp_path / "live.jsonl"
    tasks.write_text(json.dumps(task) + "\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["eval", "--tasks", str(tasks), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "scored answer-only, not gate-verified" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pass_hat_k"]["1"] == 1.0
    assert summary["answer_only_tasks"] == ["live-1"]
    assert summary["skipped_invalid_tasks"] == []
    # A key named but not set: one clear error before any episode, not a traceback.
    keyless = tmp_path / "keyless.yaml"
    keyless.write_text(yaml.safe_dump({"base_url": server, "api_key_env": "UNSET_KEY_X"}))
    other = tmp_path / "other.jsonl"
    task["search"]["collection"] = f"api:{keyless}"
    other.write_text(json.dumps(task) + "\n")
    result = CliRunner().invoke(app, ["eval", "--tasks", str(other), "--out", str(tmp_path / "r2")])
    assert result.exit_code == 1 and "$UNSET_KEY_X (the search API key) is not set" in result.output
