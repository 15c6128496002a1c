"""The sandbox that runs model-written Python: no network, no host files, bounded.

With bubblewrap (`bwrap`, Debian package `bubblewrap`), each run gets fresh namespaces
(`--unshare-all`: network, pid, ipc, uts, user, cgroup), so there is no network but a
down loopback, and a filesystem that holds only the system's read-only /usr (the
interpreter and its standard library), the task's data read-only at /data, and a fresh
scratch directory at /scratch, the only writable place, deleted afterwards. Nothing else
of the host is visible: no /etc, /home, /root, /work, /tmp.

Limits (rlimits set before bwrap starts, inherited by everything inside): address space
(memory), CPU seconds, processes (a fork bomb stops there), file size (output is written
to files, so a print loop cannot fill the host's memory), open files, no core dumps; and
a wall-clock limit, after which the whole process group is killed. The sandbox's pid
namespace dies with its first process, so nothing started inside outlives a run; a
process still running when the code ends is reported as an error. As root, the sandbox
runs as `nobody`, because the kernel exempts root from the process limit.

Without bwrap, `run_python` refuses (a `sandbox_error` that says why) unless
`AGENTWHEEL_SANDBOX=rlimits` is set: then code runs with the same rlimits, the wall
clock and an empty environment in a scratch directory, but with the host's network and
filesystem, and a warning says so once; a child that leaves the process group may
outlive the run. Only for trusted code on a throwaway machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
NOBODY = 65534
MODE_ENV = "AGENTWHEEL_SANDBOX"
LEFTOVER_EXIT = 97
# Runs the code, then fails if any process but itself and the namespace's init is left.
_SUPERVISOR = (
    '"$0" -I -S -c "$1"; rc=$?; for d in /proc/[0-9]*; do p=${d#/proc/}; '
    'if [ "$p" != 1 ] && [ "$p" != $$ ]; then echo "a process was left running" >&2; '
    f"exit {LEFTOVER_EXIT}; fi; done; exit $rc"
)
_SIGNALS = {
    int(signal.SIGXCPU): "the CPU time limit was reached",
    int(signal.SIGXFSZ): "the output size limit was reached",
    int(signal.SIGKILL): "killed (a limit was reached)",
}


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 512
    processes: int = 16
    file_mb: int = 8
    output_chars: int = 4000


@dataclass(frozen=True)
class SandboxResult:
    """`error` is None when the code ran to exit status 0 within the limits."""

    stdout: str
    stderr: str
    exit_code: int | None
    error: str | None = None


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def sandbox_python() -> str:
    """The interpreter the sandbox runs: the system's, which lives under /usr."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


def run_python(
    code: str, data_dir: Path | None, limits: SandboxLimits | None = None
) -> SandboxResult:
    """Run `code` in the sandbox; never raises for anything the code does."""
    limits = limits or SandboxLimits()
    bwrap = bwrap_path()
    if bwrap is None and os.environ.get(MODE_ENV) != "rlimits":
        return SandboxResult(
            "",
            "",
            None,
            "sandbox unavailable: bubblewrap (bwrap) is not installed (apt-get install "
            f"bubblewrap), so model code is not run; {MODE_ENV}=rlimits runs it with "
            "resource limits only, without network or filesystem isolation",
        )
    scratch = Path(tempfile.mkdtemp(prefix="agentwheel-scratch-"))
    captured = Path(tempfile.mkdtemp(prefix="agentwheel-output-"))
    try:
        as_nobody = os.geteuid() == 0
        if as_nobody:
            os.chown(scratch, NOBODY, NOBODY)
        python = sandbox_python()
        if bwrap is None:
            _warn_weak_once()
            # No pid namespace to inspect: the process group is killed at the end instead.
            command = ["/bin/sh", "-c", 'exec "$0" -I -S -c "$1"', python, code]
        else:
            view = staged_for_others(data_dir) if as_nobody and data_dir else data_dir
            command = [*_bwrap_command(bwrap, python, view, scratch), python, code]
        return _run(command, scratch if bwrap is None else None, captured, limits, as_nobody)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(captured, ignore_errors=True)


_warned = False


def _warn_weak_once() -> None:
    global _warned
    if not _warned:
        log.warning(
            "%s=rlimits: model code runs WITHOUT network or filesystem isolation "
            "(bubblewrap is missing); resource limits only",
            MODE_ENV,
        )
        _warned = True


_STAGED: dict[Path, Path] = {}


def others_can_read(path: Path) -> bool:
    """Whether a user with no rights of its own can reach and list `path` and read its files."""
    path = path.resolve()
    if any(not p.stat().st_mode & 0o001 for p in [path, *path.parents]):
        return False
    return all(f.stat().st_mode & 0o004 for f in path.rglob("*") if f.is_file())


def staged_for_others(data_dir: Path) -> Path:
    """`data_dir`, or a read-only copy that `nobody` can read (made once per process): the
    sandbox runs as `nobody` under root and sees the data through bwrap, which it runs."""
    data_dir = data_dir.resolve()
    if others_can_read(data_dir):
        return data_dir
    if data_dir not in _STAGED:
        stage = Path(tempfile.mkdtemp(prefix="agentwheel-data-"))
        os.chmod(stage, 0o755)
        copy = stage / "data"
        shutil.copytree(data_dir, copy)
        for item in [copy, *copy.rglob("*")]:
            os.chmod(item, 0o755 if item.is_dir() else 0o644)
        _STAGED[data_dir] = copy
    return _STAGED[data_dir]


def _bwrap_command(bwrap: str, python: str, data_dir: Path | None, scratch: Path) -> list[str]:
    command = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    command += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib64", "/sbin"):
        target = Path(top)
        if target.is_symlink():
            command += ["--symlink", os.readlink(target), top]
        elif target.is_dir():
            command += ["--ro-bind", top, top]
    prefix = str(Path(python).resolve().parent.parent)
    if not prefix.startswith("/usr"):
        command += ["--ro-bind", prefix, prefix]
    command += ["--proc", "/proc", "--dev", "/dev"]
    if data_dir is not None:
        command += ["--ro-bind", str(data_dir), "/data"]
    command += ["--bind", str(scratch), "/scratch", "--chdir", "/scratch"]
    command += ["--clearenv", "--setenv", "HOME", "/scratch", "--setenv", "TMPDIR", "/scratch"]
    command += ["--setenv", "PATH", "/usr/bin:/bin", "--hostname", "sandbox"]
    return [*command, "/bin/sh", "-c", _SUPERVISOR]


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count


def _limiter(limits: SandboxLimits, as_nobody: bool, process_cap: int):  # type: ignore[no-untyped-def]
    def apply() -> None:
        memory = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        # SIGXCPU at the soft limit (a clear reason), SIGKILL a second later.
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb << 20, limits.file_mb << 20))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (process_cap, process_cap))
        if as_nobody:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    return apply


def _run(
    command: list[str],
    cwd: Path | None,
    captured: Path,
    limits: SandboxLimits,
    as_nobody: bool,
) -> SandboxResult:
    uid = NOBODY if as_nobody else os.getuid()
    # RLIMIT_NPROC counts every process of the uid; bwrap itself uses three.
    process_cap = _processes_of(uid) + limits.processes + 3
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)} if cwd is not None else {}
    with open(captured / "out", "wb") as out, open(captured / "err", "wb") as err:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_limiter(limits, as_nobody, process_cap),
        )
        timed_out = False
        try:
            process.wait(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(process.pid)
        process.wait()
    stdout = _read_capped(captured / "out", limits.output_chars)
    stderr = _read_capped(captured / "err", limits.output_chars)
    return SandboxResult(
        stdout, stderr, process.returncode, _why(process.returncode, stderr, timed_out, limits)
    )


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read_capped(path: Path, chars: int) -> str:
    with open(path, "rb") as handle:
        data = handle.read(chars * 4)
    text = data.decode("utf-8", "replace")
    return text[:chars] + ("…[cut]" if len(text) > chars else "")


def _why(code: int | None, stderr: str, timed_out: bool, limits: SandboxLimits) -> str | None:
    if timed_out:
        return f"stopped after the {limits.wall_s:g} s wall-clock limit"
    if code == 0:
        return None
    # A signal shows as a negative status, or as 128 + its number through the shell.
    signum = (
        -code if code is not None and code < 0 else (code - 128 if code and 128 < code < 160 else 0)
    )
    if signum:
        return _SIGNALS.get(signum, f"killed by signal {signum}")
    if "BlockingIOError" in stderr or "Resource temporarily unavailable" in stderr:
        return f"the limit of {limits.processes} processes was reached"
    if code == LEFTOVER_EXIT and "a process was left running" in stderr:
        return "a process was left running when the code ended (it was killed)"
    if "MemoryError" in stderr:
        return f"the {limits.memory_mb} MB memory limit was reached"
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return f"exit status {code}: {tail}"[:500]
