"""Numbers out of their range are refused where they are read: a CLI option by click (exit 2,
naming the option, the value and the range), a config field by the config check (exit 1,
one line naming the key, the value and the range). Before these checks a negative batch
size looped forever, `--limit 0` ran everything and `--samples 0` divided by zero."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.cli.config_file import load_schedule_config
from agentwheel.cli.errors import UserError
from tests.flywheels.reasoning.fakes import ScriptedChat

runner = CliRunner()

EVAL = ["eval", "--policy", "oracle"]
SYNTH_AGENTIC = ["synth", "agentic", "--out", "{tmp}/o"]
EVOLVE_AGENTIC = ["evolve", "agentic", "--report", "{tmp}", "--out", "{tmp}/o"]
SYNTH_REASONING = ["synth", "reasoning", "--out", "{tmp}/o"]
EVOLVE_REASONING = [
    "evolve",
    "reasoning",
    "--report",
    "{tmp}",
    "--policy",
    "hf:default",
    "--out",
    "{tmp}/o",
]

OUT_OF_RANGE = [
    (EVAL, "--batch-size", "-3"),
    (EVAL, "--batch-size", "0"),
    (EVAL, "--limit", "0"),
    (EVAL, "--limit", "-1"),
    (EVAL, "--max-turns", "0"),
    (EVAL, "--max-turns", "-5"),
    (EVAL, "--temperature", "-1"),
    (EVAL, "--max-new-tokens", "0"),
    (EVAL, "--seed", "-1"),
    (EVAL, "--request-timeout", "0"),
    (EVAL, "--max-retries", "-1"),
    (EVAL, "-k", "0"),
    (SYNTH_AGENTIC, "--tasks-per-workflow", "0"),
    (SYNTH_AGENTIC, "--extra-conditions", "-1"),
    (SYNTH_AGENTIC, "--seed", "-2"),
    (EVOLVE_AGENTIC, "--samples", "0"),
    (EVOLVE_AGENTIC, "--tasks-per-workflow", "0"),
    (EVOLVE_AGENTIC, "--temperature", "-0.5"),
    (EVOLVE_AGENTIC, "--max-new-tokens", "-5"),
    (EVOLVE_AGENTIC, "--max-turns", "0"),
    (EVOLVE_AGENTIC, "--batch-size", "-1"),
    (EVOLVE_AGENTIC, "--seed", "-1"),
    (SYNTH_REASONING, "--limit", "0"),
    (SYNTH_REASONING, "--seed", "-1"),
    (EVOLVE_REASONING, "-n", "0"),
    (EVOLVE_REASONING, "--min-agree", "0"),
    (EVOLVE_REASONING, "--max-new-tokens", "0"),
    (EVOLVE_REASONING, "--temperature", "-1"),
    (EVOLVE_REASONING, "--procedural-children", "-1"),
    (EVOLVE_REASONING, "--band-low", "-0.1"),
    (EVOLVE_REASONING, "--band-high", "1.5"),
    (EVOLVE_REASONING, "--batch-size", "0"),
    (EVOLVE_REASONING, "--limit", "0"),
    (EVOLVE_REASONING, "--round", "0"),
    (EVOLVE_REASONING, "--seed", "-1"),
]


@pytest.mark.timeout(60)  # a negative batch size used to loop forever
@pytest.mark.parametrize(("command", "option", "value"), OUT_OF_RANGE)
def test_an_option_out_of_range_is_a_usage_error_naming_it(tmp_path, command, option, value):
    args = [part.format(tmp=tmp_path) for part in command]
    (tmp_path / "summary.json").write_text("{}")
    result = runner.invoke(app, [*args, option, value])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert option in text and value in text and "range" in text, text
    assert not (tmp_path / "o").exists()  # refused before anything ran


BAD_CONFIG_VALUES = [
    ("runner.batch_size", "-4", ">= 1"),
    ("runner.max_agent_turns", "0", ">= 1"),
    ("runner.max_episode_tokens", "0", ">= 1"),
    ("eval.max_new_tokens", "-5", ">= 1"),
    ("eval.temperature", "-1", ">= 0"),
    ("rollout.temperature", "0", "> 0"),
    ("model.max_batch_size", "0", ">= 1"),
    ("sft.max_tasks", "0", ">= 1"),
    ("sft.max_steps", "0", ">= 1"),
    ("sft.train.epochs", "-1", ">= 1"),
    ("sft.train.batch_size", "0", ">= 1"),
    ("sft.train.warmup_steps", "-1", ">= 0"),
    ("grpo.max_grad_norm", "0", "> 0"),
    ("grpo.adam_beta1", "1.5", "[0, 1)"),
    ("grpo.lora.rank", "0", ">= 1"),
    ("grpo.lora.dropout", "1", "[0, 1)"),
    ("seed", "-1", ">= 0"),
    ("rounds.0.group_size", "1", ">= 2"),
    ("model.generation.max_model_len", "0", ">= 1"),
    ("rollout.temperature", "inf", "a finite number"),
    ("eval.temperature", "nan", "a finite number"),
]


@pytest.mark.parametrize(("key", "value", "allowed"), BAD_CONFIG_VALUES)
def test_a_config_value_out_of_range_names_key_value_and_range(key, value, allowed):
    with pytest.raises(UserError) as caught:
        load_schedule_config("tiny", [f"{key}={value}"])
    message = str(caught.value)
    assert key in message and f"got {value}" in message and allowed in message, message
    assert "\n" not in message


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_temperature_that_is_not_finite_is_a_usage_error(tmp_path, value):
    result = runner.invoke(app, [*EVAL, "--temperature", value, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "--temperature" in text and "not a finite number" in text, text
    assert not (tmp_path / "o").exists()


def test_train_reports_a_bad_config_value_on_one_line(tmp_path):
    result = runner.invoke(
        app, ["train", "--config", "tiny", "--out", str(tmp_path), "--set", "runner.batch_size=-4"]
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "runner.batch_size" in lines[0] and "got -4" in lines[0]


def test_a_device_that_does_not_exist_is_refused_naming_the_devices_there_are():
    import torch

    missing = f"cuda:{torch.cuda.device_count()}"
    with pytest.raises(UserError) as caught:
        load_schedule_config("tiny", [f"model.device={missing}"])
    message = str(caught.value)
    assert f"model.device {missing!r}" in message and "devices here: cpu" in message
    with pytest.raises(UserError, match=r"model\.device"):
        load_schedule_config("tiny", ["model.device=gpu"])
    assert load_schedule_config("tiny", ["model.device=cpu"]).model.device == "cpu"


# -- commands that make nothing exit non-zero


def test_evolve_agentic_that_keeps_no_task_fails(tmp_path):
    report = tmp_path / "report"
    eval_run = runner.invoke(
        app, ["eval", "--tasks", "fixtures", "--limit", "3", "--out", str(report)]
    )
    assert eval_run.exit_code == 0, eval_run.output
    # The oracle passes every evolved task: none is in the learnable band.
    args = ["evolve", "agentic", "--report", str(report), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--policy", "oracle", "--samples", "1"])
    assert result.exit_code == 1, result.output
    error = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert "no tasks" in error and "manifest.json" in error


def test_synth_reasoning_that_keeps_no_problem_fails(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"id": "p1", "question": "2+2?"}) + "\n")  # no answer
    result = runner.invoke(
        app, ["synth", "reasoning", "--seeds", str(seeds), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1, result.output
    error = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert "no problems kept" in error and "manifest.json" in error


def test_evolve_reasoning_that_keeps_no_problem_fails(tmp_path, monkeypatch):
    seeds = tmp_path / "seeds"
    synth = runner.invoke(
        app, ["synth", "reasoning", "--seeds", "gym:chain_sum:3", "--out", str(seeds)]
    )
    assert synth.exit_code == 0, synth.output
    never = ScriptedChat("never-right", lambda request: "I am not sure.")
    monkeypatch.setattr("agentwheel.specs.load_chat_model", lambda spec, **kw: never)
    args = ["evolve", "reasoning", "--report", str(seeds), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--policy", "never", "-n", "2"])
    assert result.exit_code == 1, result.output
    error = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert "no problems kept" in error and "manifest.json" in error
