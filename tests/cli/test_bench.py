"""`agentwheel bench bfcl|tau2`: the mistakes a user can make get one clear line, before any
virtualenv is built or model served."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from agentwheel.eval.public import bfcl, tau2
from agentwheel.eval.public.served import free_port
from agentwheel.eval.public.tool_env import MARKER_FILE, ToolEnv
from tests.cli.test_errors import error_line, usage_error

runner = CliRunner()


def fake_ready_env(env: ToolEnv) -> None:
    """A virtualenv directory that passes as installed (nothing in it ever runs here)."""
    env.bin_dir.mkdir(parents=True)
    env.executable.write_text("#!/bin/sh\nexit 1\n")
    marker = {"requirements": list(env.requirements), "command": env.command}
    (env.path / MARKER_FILE).write_text(json.dumps(marker))


def model_dir(tmp_path):
    path = tmp_path / "ckpt"
    path.mkdir()
    (path / "config.json").write_text("{}")
    return path


def test_a_policy_that_cannot_be_served_is_a_usage_error(tmp_path):
    for command in ("bfcl", "tau2"):
        output = usage_error(["bench", command, "--policy", "oracle", "--out", str(tmp_path)])
        assert "'oracle' cannot be served" in output


def test_unknown_categories_and_domains_are_usage_errors(tmp_path):
    output = usage_error(["bench", "bfcl", "--categories", "simple_python", "--out", str(tmp_path)])
    assert "multi_turn_base" in output
    output = usage_error(["bench", "tau2", "--domain", "banking", "--out", str(tmp_path)])
    assert "airline" in output


def test_bfcl_needs_the_served_model_to_be_named_by_its_directory(tmp_path):
    spec = f"openai:qwen3-8b@http://127.0.0.1:{free_port()}/v1"
    line = error_line(["bench", "bfcl", "--policy", spec, "--out", str(tmp_path / "out")])
    assert "requests the model by its local directory" in line
    assert "qwen3-8b has no config.json" in line


def test_bfcl_with_no_server_fails_before_generating(tmp_path):
    venv = tmp_path / "venv"
    fake_ready_env(bfcl.tool_env(venv))
    url = f"http://127.0.0.1:{free_port()}/v1"
    spec = f"openai:{model_dir(tmp_path)}@{url}"
    line = error_line(
        ["bench", "bfcl", "--policy", spec, "--venv", str(venv), "--out", str(tmp_path / "out")]
    )
    assert f"no server at {url}" in line
    assert not (tmp_path / "out" / "bfcl.log").exists()  # bfcl-eval never started


def test_tau2_with_no_server_fails_before_simulating(tmp_path):
    venv = tmp_path / "venv"
    fake_ready_env(tau2.tool_env(venv))
    url = f"http://127.0.0.1:{free_port()}/v1"
    line = error_line(
        ["bench", "tau2", "--policy", f"openai:agent@{url}", "--venv", str(venv),
         "--num-tasks", "1", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert f"no server at {url}" in line
    assert not (tmp_path / "out" / "tau2.log").exists()


def test_a_venv_that_cannot_be_created_is_reported(tmp_path):
    blocker = tmp_path / "venv"
    blocker.write_text("not a directory")
    url = f"http://127.0.0.1:{free_port()}/v1"
    line = error_line(
        ["bench", "tau2", "--policy", f"openai:agent@{url}", "--venv", str(blocker),
         "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert f"{blocker} is a file, not a virtualenv directory" in line


def test_a_training_checkpoint_is_benchmarked_from_its_model_directory(tmp_path):
    """`--policy hf:<run>/checkpoints/sft` (as the README shows) names the checkpoint, whose
    servable model is in model/; bfcl-eval must be given that directory."""
    from agentwheel.cli.bench import local_model_dir

    (tmp_path / "sft" / "model").mkdir(parents=True)
    (tmp_path / "sft" / "model" / "config.json").write_text("{}")
    assert local_model_dir(f"hf:{tmp_path / 'sft'}") == str(tmp_path / "sft" / "model")
    assert local_model_dir(f"vllm:{tmp_path / 'sft'}") == str(tmp_path / "sft" / "model")
