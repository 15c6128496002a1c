"""A tiny real run of each official tool, end to end through `agentwheel bench`, with a
scripted OpenAI-compatible server in place of a model (seconds of model time, minutes of
tool start-up). They need the tools' virtualenvs, which `agentwheel bench` builds on first
use (pip, network, minutes); these tests use them when they are ready and skip otherwise
(`AGENTWHEEL_BFCL_VENV` / `AGENTWHEEL_TAU2_VENV`, default: the agentwheel cache)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.eval.public import bfcl, tau2
from agentwheel.eval.public.tool_env import ToolEnv
from tests.llm.openai_server import OpenAITestServer, Reply, error_reply, text_reply

pytestmark = pytest.mark.slow
runner = CliRunner()
TOOL_CALL = '<tool_call>\n{"name": "pwd", "arguments": {}}\n</tool_call>'


def ready_env(variable: str, make: Any, default_name: str) -> ToolEnv:
    from agentwheel.llm.default_model import cache_root

    env: ToolEnv = make(Path(os.environ.get(variable) or cache_root() / default_name))
    if not env.is_ready():
        pytest.skip(f"{env.path} is not built: run `agentwheel bench` once or set {variable}")
    return env


def default_model_dir_or_skip() -> Path:
    from agentwheel.llm.default_model import DefaultModelMissing, ensure_default_model

    try:
        return ensure_default_model()
    except DefaultModelMissing as exc:
        pytest.skip(str(exc))


@contextmanager
def scripted_completions_server(model: str) -> Iterator[str]:
    """`/v1/models` and `/v1/completions` only: a tool call, then text, alternately."""
    answered: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def send_json(self, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.send_json({"object": "list", "data": [{"id": model, "object": "model"}]})

        def do_POST(self) -> None:
            answered.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            text = TOOL_CALL if len(answered) % 2 else "Done."
            usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            choice = {"index": 0, "text": text, "finish_reason": "stop"}
            self.send_json({"object": "text_completion", "choices": [choice], "usage": usage})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
    assert answered and all(body["model"] == model for body in answered)


def test_bfcl_end_to_end_with_a_scripted_server(tmp_path):
    env = ready_env("AGENTWHEEL_BFCL_VENV", bfcl.tool_env, "bfcl-venv")
    # The handler reads a tokenizer and config from the model directory, offline.
    model_dir = default_model_dir_or_skip()
    with scripted_completions_server(str(model_dir)) as url:
        result = runner.invoke(
            app,
            ["bench", "bfcl", "--policy", f"openai:{model_dir}@{url}", "--limit", "1",
             "--categories", "multi_turn_base", "--venv", str(env.path), "--out", str(tmp_path / "out")],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / bfcl.REPORT_FILE).read_text())
    assert report["categories"]["multi_turn_base"]["total"] == 1
    assert (tmp_path / "out" / "score" / bfcl.MULTI_TURN_CSV).is_file()


def user_or_agent(body: dict[str, Any]) -> Reply:
    """The user simulator ends at once; the agent greets."""
    system = str(body["messages"][0].get("content") or "")
    if "User Simulation" in system:
        return text_reply("###STOP###")
    return text_reply("Hello, how can I help you today?")


def test_tau2_end_to_end_and_resume_with_a_scripted_server(tmp_path):
    env = ready_env("AGENTWHEEL_TAU2_VENV", tau2.tool_env, "tau2-venv")
    out = tmp_path / "out"
    with OpenAITestServer(user_or_agent) as server:
        args = ["bench", "tau2", "--policy", server.spec(), "--trials", "1", "--max-steps", "6",
                "--venv", str(env.path), "--out", str(out)]  # fmt: skip
        first = runner.invoke(app, [*args, "--num-tasks", "2"])
        assert first.exit_code == 0, first.output
        # the same run again: tau2 resumes, with nothing left to run
        second = runner.invoke(app, [*args, "--num-tasks", "2"])
        assert second.exit_code == 0, second.output
        assert "resuming" in second.output
    report = json.loads((out / tau2.REPORT_FILE).read_text())
    assert (report["num_tasks"], report["simulations"]) == (2, 2)
    assert set(report["pass_hat_k"]) == {"1"}
    assert report["pass_hat_k_recomputed"] == report["pass_hat_k"]


def test_tau2_scores_a_failed_simulation_zero_goes_on_and_retries_it(tmp_path):
    env = ready_env("AGENTWHEEL_TAU2_VENV", tau2.tool_env, "tau2-venv")
    out = tmp_path / "out"
    failing = {"on": True}

    def overflow_on_task_0(body: dict[str, Any]) -> Reply:
        system = str(body["messages"][0].get("content") or "")
        # airline task 0's user is Emma Kim: her simulator's request is refused as a served
        # model refuses a conversation longer than its context
        if failing["on"] and "emma_kim_9957" in system:
            return error_reply(400, "this conversation needs 8230 tokens, more than 8192")
        return user_or_agent(body)

    with OpenAITestServer(overflow_on_task_0) as server:
        args = ["bench", "tau2", "--policy", server.spec(), "--trials", "1", "--max-steps", "6",
                "--num-tasks", "2", "--venv", str(env.path), "--out", str(out)]  # fmt: skip
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        report = json.loads((out / tau2.REPORT_FILE).read_text())
        assert report["simulations"] == 2
        assert [(f["task_id"], f["trial"]) for f in report["failed"]] == [("0", 0)]
        assert "8192" in report["failed"][0]["error"]
        assert report["task_rewards"]["0"] == [0.0]
        failing["on"] = False
        again = runner.invoke(app, [*args, "--retry-failed"])
        assert again.exit_code == 0, again.output
        assert "running again 1 simulation" in again.output
    report = json.loads((out / tau2.REPORT_FILE).read_text())
    assert (report["simulations"], report["failed"]) == (2, [])
