"""Settings are data: reading and checking any config imports no torch and no
implementation, and configs saved by earlier runs still load."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from agentwheel.cli.config_file import checked_config
from agentwheel.cli.errors import UserError
from agentwheel.core.resources import bundled_config
from agentwheel.settings.schedule import ScheduleConfig
from agentwheel.study.config import StudyConfig

REPO = Path(__file__).resolve().parents[2]
SAVED_CONFIGS = sorted((REPO / "bench" / "results").rglob("config.yaml"))

CHECK_EVERY_CONFIG = """
import sys
from pathlib import Path
import agentwheel.settings.schedule, agentwheel.settings.rounds, agentwheel.study.config
from agentwheel.cli.config_file import check_names, checked_config
from agentwheel.core.resources import bundled_config_names

saved = sorted(Path("bench/results").rglob("config.yaml"))
for name in [*bundled_config_names(), *saved]:
    checked_config(name)
print(sorted(m for m in ("torch", "transformers", "agentwheel.flywheels", "agentwheel.train")
             if m in sys.modules))
for name in bundled_config_names():
    path, config = checked_config(name)
    check_names(config, path, [])
print(sorted(m for m in ("torch", "transformers") if m in sys.modules))
"""


def test_checking_every_bundled_and_saved_config_imports_no_torch_and_no_flywheel():
    result = subprocess.run(
        [sys.executable, "-c", CHECK_EVERY_CONFIG],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    schema_only, with_names = result.stdout.split("\n")[:2]
    # The schema: settings only. The names (workflow ids, model spec) read the workflow
    # library, still without torch.
    assert schema_only == "[]"
    assert with_names == "[]"


CHECK_CONFIG_COMMAND = """
import sys
from agentwheel.cli import main
sys.argv = ["agentwheel", "check-config", "--config", sys.argv[1]]
try:
    main()
except SystemExit as exc:
    print("exit", exc.code)
print(sorted(m for m in ("torch", "transformers", "peft", "agentwheel.llm.hf") if m in sys.modules))
"""


# The command also checks workflow ids and the model spec's name (the workflow reader and
# the model factories' names), still without torch.
@pytest.mark.parametrize("config", ["study", "demo", "tiny"])
def test_the_check_config_command_loads_no_torch(config):
    result = subprocess.run(
        [sys.executable, "-c", CHECK_CONFIG_COMMAND, config],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert f"ok: {config}:" in " ".join(result.stderr.split())
    assert result.stdout.splitlines()[-1] == "[]"


def test_the_check_config_command_reports_a_bad_key_on_one_line():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentwheel",
            "check-config",
            "--config",
            "tiny",
            "--set",
            "grpo.lrr=1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert "error:" in result.stderr and "lrr" in result.stderr


def test_every_committed_run_config_still_loads():
    assert SAVED_CONFIGS, "bench/results holds saved run configs"
    for path in SAVED_CONFIGS:
        raw = yaml.safe_load(path.read_text())
        schema = StudyConfig if "study" in raw else ScheduleConfig
        # As a resumed run reads it (RunContext, StudyRun), and as the CLI checks it.
        config = schema.model_validate(raw)
        assert checked_config(path)[1] == config
        assert "temperature" not in config.model_dump()["grpo"]


def tiny_raw() -> dict:
    return yaml.safe_load(bundled_config("tiny").read_text())


def test_a_legacy_grpo_temperature_equal_to_the_rollouts_is_dropped():
    raw = tiny_raw()
    raw["rollout"]["temperature"] = 0.8
    raw["grpo"]["temperature"] = 0.8
    config = ScheduleConfig.model_validate(raw)
    assert config.rollout.temperature == 0.8
    assert "temperature" not in yaml.safe_load(config.to_yaml())["grpo"]
    del raw["rollout"]["temperature"]
    raw["grpo"]["temperature"] = 1.0  # the rollouts' default
    assert ScheduleConfig.model_validate(raw).rollout.temperature == 1.0


def test_a_legacy_grpo_temperature_that_differs_names_both_keys(tmp_path):
    raw = tiny_raw()
    raw["rollout"]["temperature"] = 0.7
    raw["grpo"]["temperature"] = 1.0
    with pytest.raises(
        ValidationError,
        match=r"grpo\.temperature \(1\.0\) differs from "
        r"rollout\.temperature \(0\.7\)",
    ):
        ScheduleConfig.model_validate(raw)
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=r"grpo\.temperature .*rollout\.temperature"):
        checked_config(path)
