"""The one way tests run the command line as a user does: ``python -m scanner`` in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

PLEDGESCAN = (sys.executable, "-m", "scanner")


def child_env(env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment with ``env`` applied (a None value removes the variable)."""
    merged: dict[str, str | None] = {**os.environ, **(env or {})}
    return {k: v for k, v in merged.items() if v is not None}


def pledgescan(*args: str, env: Mapping[str, str | None] | None = None, cwd: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``pledgescan ARGS...``; stdout and stderr captured as text."""
    return subprocess.run([*PLEDGESCAN, *args], capture_output=True, text=True, timeout=timeout,
                          env=child_env(env), cwd=cwd)
