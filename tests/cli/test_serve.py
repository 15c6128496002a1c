"""`agentwheel serve` over trained checkpoints: the CLI process, and our own `openai:`
policy through it scoring what the same checkpoint scores in-process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import torch
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.core.messages import Message, ToolCall
from agentwheel.llm.default_model import load_hf_spec
from agentwheel.llm.server.http import OpenAIServer
from agentwheel.llm.server.service import ChatService
from agentwheel.settings.model import ModelSettings
from agentwheel.train.model_factory import build_tiny_model
from tests.envs.sample_tasks import TOOLS
from tests.llm.memorized import save_as_checkpoint, teach_reply
from tests.train.conftest import require_bundled_gguf

runner = CliRunner()
URL = re.compile(r"http://127\.0\.0\.1:\d+/v1")


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# One tool keeps the prompts short, so that teaching a reply takes seconds.
TOOL = TOOLS[:1]


def tiny_checkpoint(path: Path, reply: Message | None = None) -> Path:
    """The `tiny` model saved as a training checkpoint, taught to say `reply` if given."""
    require_bundled_gguf()
    model = build_tiny_model(ModelSettings(spec="tiny"), seed=0)
    if reply is not None:
        teach_reply(model, reply, TOOL)
    return save_as_checkpoint(model, path)


@pytest.fixture()
def served_process(tmp_path) -> Iterator[tuple[str, subprocess.Popen]]:
    call = ToolCall(id="c0", name="get_order", arguments={"order_id": "O-1"})
    checkpoint = tiny_checkpoint(tmp_path / "ckpt", Message(role="assistant", tool_calls=[call]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentwheel",
            "serve",
            f"hf:{checkpoint}",
            "--port",
            "0",
            "--model-name",
            "ckpt",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            found = URL.search(line)
            if found:
                yield found.group(0), process
                break
        else:
            pytest.fail(f"the server never said where it listens (exit {process.wait()})")
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_the_openai_client_gets_tool_calls_from_a_served_checkpoint(served_process):
    url, process = served_process
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    messages = [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "Hello, where is my order O-1?"},
    ]
    tools = [t.openai_schema() for t in TOOL]
    reply = client.chat.completions.create(
        model="ckpt", messages=messages, tools=tools, temperature=0, max_tokens=48
    )
    (call,) = reply.choices[0].message.tool_calls
    assert call.function.name == "get_order"
    assert json.loads(call.function.arguments) == {"order_id": "O-1"}
    assert reply.choices[0].finish_reason == "tool_calls"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="ckpt", messages=messages, max_tokens=-1)
    again = client.chat.completions.create(
        model="ckpt", messages=messages, tools=tools, temperature=0
    )
    assert again.choices[0].message.tool_calls and process.poll() is None


def test_vllm_specs_are_handed_to_vllm_serve(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    result = runner.invoke(
        app, ["serve", f"vllm:{tmp_path}?enable_thinking=false", "--port", "9100", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    command = result.stdout.split()
    # A checkpoint directory is served from its model/ folder.
    assert command[:3] == ["vllm", "serve", str(tmp_path / "model")]
    assert "--tool-call-parser" in command and "hermes" in command and "9100" in command


def test_the_openai_policy_through_serve_scores_what_hf_scores(tmp_path):
    """Greedy, the served checkpoint answers every fixture task's opening as the same
    checkpoint does in-process, and the two evals score the same pass^1. (A random model
    passes nothing; what must match is every reply.)"""
    checkpoint = tiny_checkpoint(tmp_path / "ckpt")
    spec = f"hf:{checkpoint / 'model'}"
    common = ["eval", "--tasks", "fixtures", "--max-new-tokens", "16", "--max-turns", "2"]
    direct = runner.invoke(app, [*common, "--policy", spec, "--out", str(tmp_path / "hf")])
    assert direct.exit_code == 0, direct.output
    model = load_hf_spec(spec)
    with OpenAIServer(ChatService(model, "ckpt"), port=0).start() as server:
        served = runner.invoke(
            app,
            [
                *common,
                "--policy",
                f"openai:ckpt@{server.base_url}",
                "--out",
                str(tmp_path / "http"),
            ],
        )
        assert served.exit_code == 0, served.output
        assert server.service.batcher.stats.largest_call > 1

    def results(run: str) -> tuple[float, dict[str, str]]:
        summary = json.loads((tmp_path / run / "summary.json").read_text())
        lines = (tmp_path / run / "traces.jsonl").read_text().splitlines()
        first_replies = {}
        for trace in map(json.loads, lines):
            first = next(m for m in trace["messages"] if m["role"] == "assistant")
            first_replies[trace["task_id"]] = first["content"]
        return summary["pass_hat_k"]["1"], first_replies

    hf_pass, hf_replies = results("hf")
    http_pass, http_replies = results("http")
    assert http_pass == hf_pass
    assert len(hf_replies) == 42 and http_replies == hf_replies
