"""Shared plumbing of the testbed's server processes: requiring a Debian tool, stopping a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path


def require_tool(available: bool, what: str, install_hint: str = "make testbed-deps") -> None:
    """Skip locally when a Debian tool is absent; fail loudly in CI, which installs it (.ci/run)."""
    import pytest

    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed but CI must have it (see .ci/run)")
    pytest.skip(f"{what} not installed ({install_hint})")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """Terminate a server process, killing it when it does not stop in time."""
    if proc is None:
        return
    _untrack(proc.pid)
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- servers left behind by a test run that was killed --------------------------------------------------
# The testbed's servers run in sessions of their own (a Ctrl-C for pytest must not reach them first), so a
# pytest killed outright (SIGKILL, a CI timeout) leaves them running on their fixed 127.x addresses, and
# the next run's fixtures cannot bind. Each server is recorded here with the pid of the run that started
# it; the next run stops the servers whose run is gone, by their pid, after checking that the pid still
# names the same command line (a pid the system gave to another process since is left alone).
OWNERS = Path(tempfile.gettempdir()) / "pledgescan-testbed-owners"


def track(proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Record a server this run started, so that a later run can stop it if this one is killed."""
    OWNERS.mkdir(exist_ok=True)
    args = [str(a) for a in proc.args] if isinstance(proc.args, list | tuple) else [str(proc.args)]
    (OWNERS / str(proc.pid)).write_text(json.dumps({"owner": os.getpid(), "args": args}))
    return proc


def _untrack(pid: int) -> None:
    (OWNERS / str(pid)).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_command(pid: int, args: list[str]) -> bool:
    """Does ``pid`` still run the recorded command? The temporary paths of its arguments must all appear
    in its command line (nginx rewrites its title but keeps them); without such paths, the whole line."""
    try:
        line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    paths = [a for a in args if tempfile.gettempdir() in a]
    return all(p in line for p in paths) if paths else line.strip() == " ".join(args)


def reap_orphans() -> list[int]:
    """Stop the recorded servers whose run is gone (SIGTERM, then SIGKILL): the pids stopped."""
    stopped: list[int] = []
    for entry in sorted(OWNERS.glob("*")) if OWNERS.is_dir() else []:
        try:
            pid, record = int(entry.name), json.loads(entry.read_text())
            owner, args = int(record["owner"]), list(record["args"])
        except (ValueError, KeyError, TypeError, OSError):
            entry.unlink(missing_ok=True)
            continue
        if _alive(owner):
            continue
        if _alive(pid) and _same_command(pid, args):
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not _alive(pid) or not _same_command(pid, args):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
            stopped.append(pid)
        entry.unlink(missing_ok=True)
    return stopped
