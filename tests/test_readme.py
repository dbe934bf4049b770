"""The README's command lines use options that exist (a stale README is a bug)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from scanner.cli.main import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    lines = [ln.split("  #")[0].strip() for b in blocks for ln in b.splitlines()]
    return [ln for ln in lines if ln.startswith("pledgescan ")]


@pytest.mark.parametrize("line", readme_commands())
def test_readme_command_parses(line: str):
    words = [w for w in shlex.split(line)[1:] if not (w.startswith("[") or w.endswith("]"))]
    name, *args = words
    command = cli.get_command(click.Context(cli), name)
    assert command is not None, f"unknown command in README: {name}"
    ctx = command.make_context(name, [a for a in args if "|" not in a], resilient_parsing=True)
    known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    for a in args:
        if a.startswith("-"):
            assert a.split("=")[0] in known, f"{line}: {a} is not an option of {name}"
    if name == "scan" and "--resume" in args:
        assert not ctx.params.get("targets"), line  # (--members F --resume: that file's run)
