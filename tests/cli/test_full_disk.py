"""A full disk (ENOSPC) while synth, eval or train write: one `error:` line, exit code 1,
and no half-written stage output. The disk is real: a tiny tmpfs mounted in a private
mount namespace (`unshare`), so the kernel itself answers "No space left on device"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RETAIL = REPO / "agentwheel" / "data" / "fixtures" / "retail.jsonl"
WORKFLOW = REPO / "agentwheel" / "data" / "workflows" / "retail_order_cancel.yaml"


def on_a_full_disk(tmp_path: Path, size: str, *args: str) -> tuple[int, str, list[str]]:
    """Run `agentwheel <args>` with `{disk}` in them standing for a fresh tmpfs of `size`;
    the exit code, the output, and what is left on the disk (the tmpfs goes with the
    namespace, so the listing is taken inside it)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    disk = tmp_path / "disk"
    disk.mkdir()
    command = " ".join(f"'{a.format(disk=disk)}'" for a in args)
    script = (
        f"mount -t tmpfs -o size={size} tmpfs {disk} || exit 99; "
        f'{sys.executable} -m agentwheel {command}; echo "rc=$?"; '
        f"cd {disk} && find . -mindepth 1 | sort"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "300", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    if done.returncode == 99 or "rc=" not in done.stdout:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {done.stderr[-300:]}")
    before, _, listing = done.stdout.rpartition("rc=")
    code, _, files = listing.partition("\n")
    return int(code), before + done.stderr, files.split()


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


@pytest.mark.slow  # each runs the CLI in a fresh process: tens of seconds
def test_synth_on_a_full_disk(tmp_path):
    code, output, left = on_a_full_disk(
        tmp_path, "48k", "synth", "agentic", "--workflows", str(WORKFLOW), "--out", "{disk}/out"
    )
    assert code == 1, output
    assert "no space left" in one_error_line(output)
    assert [f for f in left if f.endswith((".jsonl", ".json")) or ".tmp-" in f] == [], left


@pytest.mark.slow
def test_eval_on_a_full_disk(tmp_path):
    args = ["eval", "--policy", "oracle", "--tasks", str(RETAIL), "--out", "{disk}/run"]
    code, output, left = on_a_full_disk(tmp_path, "16k", *args)
    assert code == 1, output
    line = one_error_line(output)
    assert "no space left" in line and "--resume" in line
    assert "./run/summary.json" not in left and not [f for f in left if ".tmp-" in f], left


@pytest.mark.slow  # a minute: the tiny run gets as far as its first large write
@pytest.mark.parametrize(
    "args",
    [
        ["train", "--config", "tiny", "--out", "{disk}/run"],
        ["study", "--config", "study-tiny", "--out", "{disk}/study"],
    ],
    ids=["train", "study"],
)
def test_a_run_on_a_full_disk_says_resume(tmp_path, args):
    code, output, left = on_a_full_disk(tmp_path, "64k", *args)
    assert code == 1, output
    line = one_error_line(output)
    assert "no space left" in line and "--resume" in line
    assert not [f for f in left if ".tmp-" in f], left


def test_a_library_s_own_no_space_error_is_a_full_disk():
    from safetensors import SafetensorError

    from agentwheel.cli.errors import describe, disk_full

    written = SafetensorError("Error while serializing: I/O error: No space left on device")
    assert disk_full(written) and "no space left" in (describe(written) or "")
    try:
        try:
            raise written
        except SafetensorError as inner:
            raise RuntimeError("saving the checkpoint failed") from inner
    except RuntimeError as outer:
        assert disk_full(outer)
    assert not disk_full(ValueError("no such column")) and not disk_full(OSError(2, "gone"))
