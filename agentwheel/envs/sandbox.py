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
import re
import select
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
_AS_NOBODY = ("--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups")
_OTHERS_LEFT = (
    "left=0; for d in /proc/[0-9]*; do p=${d#/proc/}; "
    'if [ "$p" != 1 ] && [ "$p" != $$ ]; then left=1; fi; done; '
)
# Kill what is left and wait until the namespace's init has reaped it, so that nothing
# the code started is alive (or still dying) when the call returns.
_LEFTOVER_CHECK = (
    f"{_OTHERS_LEFT}if [ $left = 1 ]; then "
    f'echo "a process was left running" >&2; rc={LEFTOVER_EXIT}; n=0; '
    f"while [ $n -lt 2000 ]; do kill -9 -1 2>/dev/null; {_OTHERS_LEFT}"
    "[ $left = 0 ] && break; n=$((n+1)); done; fi; exit $rc"
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
        # RLIMIT_NPROC counts every process of the uid; bwrap itself uses three.
        cap = _processes_of(NOBODY if as_nobody else os.getuid()) + limits.processes + 3
        if bwrap is None:
            _warn_weak_once()
            # No pid namespace to inspect: the process group is killed at the end instead.
            command = ["/bin/sh", "-c", supervisor(limits, cap, False), python, code]
        else:
            view = staged_for_others(data_dir) if as_nobody and data_dir else data_dir
            script = supervisor(limits, cap, True)
            command = [*_bwrap_command(bwrap, python, view, scratch), script, python, code]
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
    return [*command, "/bin/sh", "-c"]


def supervisor(limits: SandboxLimits, process_cap: int, check_leftovers: bool) -> str:
    """The shell script the code runs under (`$0` the interpreter, `$1` the code): it sets
    the rlimits (in the shell, not in a Python `preexec_fn`, which would make every call
    fork the whole host process), runs the code and, inside the sandbox's pid namespace,
    fails if any process but itself and the namespace's init is left."""
    limits_set = (
        f"ulimit -v {limits.memory_mb * 1024} && ulimit -t {limits.cpu_s + 1} && "
        # SIGXCPU at the soft limit (a clear reason), SIGKILL a second later.
        f"ulimit -S -t {limits.cpu_s} && ulimit -f {limits.file_mb * 2048} && "
        f"ulimit -n 64 && ulimit -c 0 && ulimit -p {process_cap} || exit 125; "
    )
    run = '"$0" -I -S -c "$1"; rc=$?; '
    return limits_set + (run + _LEFTOVER_CHECK if check_leftovers else 'exec "$0" -I -S -c "$1"')


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count


def _run(
    command: list[str],
    cwd: Path | None,
    captured: Path,
    limits: SandboxLimits,
    as_nobody: bool,
) -> SandboxResult:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)} if cwd is not None else {}
    setpriv = shutil.which("setpriv") if as_nobody else None
    # bwrap reports the host pid of the sandbox's init on this pipe: the call returns only
    # once that init (and with it the whole pid namespace) is gone.
    info_read, info_write = os.pipe() if cwd is None else (-1, -1)
    if cwd is None:
        command = [command[0], "--info-fd", str(info_write), *command[1:]]
    try:
        with open(captured / "out", "wb") as out, open(captured / "err", "wb") as err:
            process = subprocess.Popen(
                [setpriv, *_AS_NOBODY, *command] if setpriv else command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd,
                env=env,
                start_new_session=True,
                pass_fds=(info_write,) if cwd is None else (),
                # Without setpriv, Popen switches the user itself (it then forks the host
                # process instead of vfork-ing it: some milliseconds more per call).
                user=NOBODY if as_nobody and not setpriv else None,
                group=NOBODY if as_nobody and not setpriv else None,
                extra_groups=[] if as_nobody and not setpriv else None,
            )
            if cwd is None:
                os.close(info_write)
            timed_out = not _exited_within(process.pid, limits.wall_s, process)
            _kill_group(process.pid)
            process.wait()
            if cwd is None:
                _wait_for_sandbox_init(info_read)
    finally:
        if cwd is None:
            os.close(info_read)
    stdout = _read_capped(captured / "out", limits.output_chars)
    stderr = _read_capped(captured / "err", limits.output_chars)
    return SandboxResult(
        stdout, stderr, process.returncode, _why(process.returncode, stderr, timed_out, limits)
    )


def _wait_for_sandbox_init(info_read: int, seconds: float = 5.0) -> None:
    """Wait until the sandbox's init has died (it is killed as bwrap exits)."""
    ready, _, _ = select.select([info_read], [], [], seconds)
    text = os.read(info_read, 4096).decode(errors="replace") if ready else ""
    match = re.search(r'"child-pid"\s*:\s*(\d+)', text)
    if match:
        _exited_within(int(match.group(1)), seconds)


def _exited_within(
    pid: int, seconds: float, process: subprocess.Popen[bytes] | None = None
) -> bool:
    """Whether the process ends within `seconds`. A pidfd wakes up the moment it does;
    `Popen.wait(timeout)` polls with sleeps of up to 50 ms, which was most of the
    sandbox's overhead per call."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (AttributeError, OSError):
        if process is None:
            return True
        try:
            process.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        ready, _, _ = select.select([pidfd], [], [], seconds)
        return bool(ready)
    finally:
        os.close(pidfd)


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
