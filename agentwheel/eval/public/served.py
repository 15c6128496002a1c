"""A model spec served for the length of a benchmark: `agentwheel serve` in a child process.

The benchmark tools run in their own virtualenvs and speak HTTP, so the policy is put
behind agentwheel's OpenAI-compatible server on a free loopback port and stopped when the
block ends. Its output goes to a log file in the run directory.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from agentwheel.eval.public.endpoint import EndpointError, wait_for_server

LOOPBACK = "127.0.0.1"
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def serve_command(spec: str, model_name: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The command line that serves `spec` as `model_name` on loopback `port`."""
    return [
        sys.executable, "-m", "agentwheel", "serve", spec,
        "--host", LOOPBACK, "--port", str(port), "--model-name", model_name, *extra,
    ]  # fmt: skip


@contextmanager
def served_model(
    spec: str,
    model_name: str,
    log_path: Path,
    start_timeout_s: float = 600.0,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Serve `spec` as `model_name` while the block runs; yields the base URL (`…/v1`).
    Raises `EndpointError` (with the server log's last lines) if it does not come up."""
    port = free_port()
    base_url = f"http://{LOOPBACK}:{port}/v1"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            serve_command(spec, model_name, port, extra_args),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            try:
                wait_for_server(base_url, start_timeout_s, lambda: process.poll() is None)
            except EndpointError:
                state = "exited" if process.poll() is not None else "did not answer in time"
                raise EndpointError(
                    f"`agentwheel serve {spec}` {state}: {log_tail(log_path)} (log: {log_path})"
                ) from None
            yield base_url
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "no log"
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "empty log"
