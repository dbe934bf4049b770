"""Shared plumbing of the testbed's server processes: requiring a Debian tool, stopping a process."""

from __future__ import annotations

import os
import subprocess


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
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
