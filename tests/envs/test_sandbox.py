"""Each escape attempt is stopped with an error, and the host is unharmed."""

import os
import socket
import threading

import pytest

from agentwheel.envs.sandbox import SandboxLimits, bwrap_path, run_python

needs_bwrap = pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap is not installed")
FAST = SandboxLimits(wall_s=3, cpu_s=1, memory_mb=256, processes=8)


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "sales.csv").write_text("region,amount\nnorth,10\nsouth,32\n")
    return folder


def _our_processes() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


@needs_bwrap
def test_code_reads_the_data_and_prints(data):
    code = (
        "import csv\nprint(sum(int(r['amount']) for r in csv.DictReader(open('/data/sales.csv'))))"
    )
    result = run_python(code, data, FAST)
    assert result.error is None and result.stdout.strip() == "42"


@needs_bwrap
def test_no_network_even_to_the_hosts_loopback(data):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[object] = []
    server.settimeout(1)
    thread = threading.Thread(target=lambda: accepted.append(_accept(server)))
    thread.start()
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('in')"
    result = run_python(code, data, FAST)
    thread.join()
    server.close()
    assert result.error is not None and "in" not in result.stdout
    assert accepted == [None]


def _accept(server: socket.socket) -> object:
    try:
        return server.accept()
    except TimeoutError:
        return None


@needs_bwrap
def test_host_files_outside_the_data_cannot_be_read(data, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    for path in (secret, "/etc/passwd", "/root/.bashrc", "/etc/hostname"):
        result = run_python(f"print(open({str(path)!r}).read())", data, FAST)
        assert result.error is not None and "TOPSECRET" not in result.stdout


@needs_bwrap
def test_writes_land_only_in_scratch(data, tmp_path):
    outside = tmp_path / "escape.txt"
    for path in (outside, data / "sales.csv", "/data/new.csv", "/usr/evil"):
        result = run_python(f"open({str(path)!r}, 'w').write('x')", data, FAST)
        assert result.error is not None
    assert not outside.exists()
    assert (data / "sales.csv").read_text().startswith("region,amount")
    ok = run_python("open('out.txt', 'w').write('fine')\nprint(open('out.txt').read())", data, FAST)
    assert ok.error is None and ok.stdout.strip() == "fine"


@needs_bwrap
def test_a_fork_bomb_hits_the_process_limit(data):
    before = _our_processes()
    result = run_python("import os\nwhile True:\n    os.fork()", data, FAST)
    assert result.error is not None and "process" in result.error
    assert not (_our_processes() - before - {os.getpid()}) or _settles(before)


def _settles(before: set[int]) -> bool:
    # Processes of other users on a shared machine come and go; ours must not stay.
    leftover = _our_processes() - before
    return all(_cmdline(p).find("os.fork") < 0 for p in leftover)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


@needs_bwrap
def test_a_memory_bomb_hits_the_memory_limit(data):
    result = run_python("a = []\nwhile True:\n    a.append(bytearray(10**7))", data, FAST)
    assert result.error is not None and "memory" in result.error


@needs_bwrap
def test_an_infinite_loop_is_stopped(data):
    result = run_python("while True:\n    pass", data, FAST)
    assert result.error is not None
    assert "CPU" in result.error or "wall-clock" in result.error


@needs_bwrap
def test_a_leftover_child_is_an_error_and_is_killed(data):
    marker = "agentwheel-leftover-marker"
    code = f"import subprocess\nsubprocess.Popen(['/bin/sh', '-c', 'sleep 1000 # {marker}'])"
    result = run_python(code, data, FAST)
    assert result.error is not None and "left running" in result.error
    assert not [p for p in _our_processes() if marker in _cmdline(p)]


@needs_bwrap
def test_endless_output_is_cut_not_buffered(data):
    result = run_python("while True:\n    print('x' * 1000)", data, FAST)
    assert result.error is not None
    assert len(result.stdout) <= FAST.output_chars + 10


def test_without_bwrap_model_code_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("AGENTWHEEL_SANDBOX", raising=False)
    result = run_python("print(1)", None, FAST)
    assert result.error is not None and "bubblewrap" in result.error and result.stdout == ""


def test_the_rlimits_fallback_still_limits(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("AGENTWHEEL_SANDBOX", "rlimits")
    assert run_python("print(6 * 7)", None, FAST).stdout.strip() == "42"
    bomb = run_python("a = []\nwhile True:\n    a.append(bytearray(10**7))", None, FAST)
    assert bomb.error is not None and "memory" in bomb.error
