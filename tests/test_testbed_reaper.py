"""A server the testbed started is stopped by the next run when the run that started it was killed, and
only then: never while its run lives, never when its pid now names another command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.testbed.proc import OWNERS, reap_orphans, stop_process, track

# A stand-in for a server: a process in a session of its own whose command line names a temporary path,
# as nginx, Knot and Apache do with their configuration files.
SERVER = "import sys, time; time.sleep(600)"

OWNER = f"""
import subprocess, sys, time
from tests.testbed.proc import track
proc = track(subprocess.Popen([sys.executable, "-c", {SERVER!r}, sys.argv[1]], start_new_session=True))
print(proc.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    """Exited (a zombie of another parent counts: its command line is empty)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == b""
    except OSError:
        return True


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_killed_runs_server_is_stopped_by_the_next_run(tmp_path: Path):
    root = Path(__file__).resolve().parent.parent
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path / "server.conf")], cwd=root,
                             stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    pid = int(owner.stdout.readline())
    try:
        assert (OWNERS / str(pid)).exists()
        assert pid not in reap_orphans() and not _gone(pid)  # its run lives: left alone
        owner.send_signal(signal.SIGKILL)  # the run is killed outright: its server stays behind
        owner.wait()
        assert not _gone(pid)
        assert pid in reap_orphans()
        assert _wait_gone(pid)
        assert not (OWNERS / str(pid)).exists()
    finally:
        owner.kill()
        owner.wait()
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_pid_given_to_another_command_is_left_alone(tmp_path: Path):
    # The record of a dead run names a pid that now runs something else: that process is not touched.
    other = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path / "other")])
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        OWNERS.mkdir(exist_ok=True)
        (OWNERS / str(other.pid)).write_text(json.dumps(
            {"owner": dead.pid, "args": [sys.executable, "-c", SERVER, str(tmp_path / "server.conf")]}))
        assert other.pid not in reap_orphans()
        assert other.poll() is None
        assert not (OWNERS / str(other.pid)).exists()  # the stale record is dropped
    finally:
        stop_process(other)


def test_stopping_a_server_forgets_it(tmp_path: Path):
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp_path / "x")], start_new_session=True)
    proc = track(server)
    assert (OWNERS / str(proc.pid)).exists()
    stop_process(proc)
    assert not (OWNERS / str(proc.pid)).exists() and proc.poll() is not None
