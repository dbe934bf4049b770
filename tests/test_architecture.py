"""The import arrows of design.md: checks are pure (no network, no collectors), reporters read results
only. A file that breaks one of these arrows is in the wrong room."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NETWORK = ("httpx", "httpcore", "sslyze", "nassl", "dns", "socket", "ssl", "urllib.request", "requests",
           "asyncio", "checkdmarc", "scanner.net", "scanner.collectors", "scanner.engine", "scanner.cli",
           "scanner.history", "scanner.distributed", "dramatiq", "redis")
RULES = {
    "checks": NETWORK,
    "scanner/reporters": ("checks", "scanner.collectors", "scanner.net", "scanner.engine",
                          "scanner.plugins.load_checks", "scanner.distributed", "httpx", "sslyze", "dns"),
    "scanner/evidence": ("checks", "scanner.collectors", "scanner.engine", "httpx", "sslyze", "nassl"),
    # The check API is imported by every check (third-party ones too): as pure as they are.
    "scanner/plugins.py": NETWORK,
    # Re-analysis judges stored evidence: it reaches no network code of its own.
    "scanner/reanalyse.py": ("httpx", "httpcore", "sslyze", "nassl", "dns", "socket", "ssl", "scanner.net",
                             "scanner.collectors", "checkdmarc"),
    # A third-party plugin uses the check API and the evidence model, nothing of the engine.
    "tests/plugin_example": NETWORK,
    # network plumbing is the bottom floor: it knows settings and models, nothing of what uses it
    "scanner/net": ("checks", "scanner.collectors", "scanner.engine", "scanner.cli", "scanner.history",
                    "scanner.reporters", "scanner.distributed", "scanner.notify"),
    # history reads and writes stored runs and renders them; it never scans (scanner.net.names: rules only)
    "scanner/history": ("httpx", "httpcore", "sslyze", "nassl", "dns", "ssl", "checkdmarc",
                        "scanner.net.fetcher", "scanner.net.resolver", "scanner.net.context",
                        "scanner.collectors", "scanner.engine", "scanner.cli", "scanner.distributed",
                        "dramatiq", "redis"),
    # the TLS collector records facts; the checks judge them (checks/lib/tls.py), never the other way round
    "scanner/collectors/tls": ("checks", "scanner.engine", "scanner.cli", "scanner.history",
                               "scanner.reporters", "scanner.distributed", "scanner.notify"),
    # messages read stored results (and check metadata as data); they never scan
    "scanner/notify": ("checks", "scanner.collectors", "scanner.net", "scanner.engine", "httpx", "sslyze",
                       "dns"),
}


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out.extend(f"{node.module}.{a.name}" for a in node.names)
    return out


def offending(mod: str, forbidden: tuple[str, ...]) -> bool:
    return any(mod == f or mod.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("room", sorted(RULES))
def test_import_arrows(room: str):
    bad = []
    where = ROOT / room
    paths = [where] if where.is_file() else sorted(where.rglob("*.py"))
    assert paths, f"{room} holds no Python file: is this rule still current?"
    for path in paths:
        for mod in imports(path):
            if offending(mod, RULES[room]):
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert bad == []


def test_the_rule_catches_a_violation(tmp_path: Path):
    f = tmp_path / "bad.py"
    f.write_text("import httpx\nfrom scanner.collectors.tls import collect\n")
    assert [m for m in imports(f) if offending(m, NETWORK)] == ["httpx", "scanner.collectors.tls",
                                                               "scanner.collectors.tls.collect"]


ADAPTER = ROOT / "scanner" / "collectors" / "tls" / "sslyze_adapter.py"


def test_sslyze_and_nassl_are_imported_by_the_adapter_only():
    """Upgrading sslyze is a one-module change: every sslyze/nassl import lives in the TLS adapter."""
    rooms = ("scanner", "checks", "bench", "tests")
    paths = [p for room in rooms for p in sorted((ROOT / room).rglob("*.py"))]
    assert ADAPTER in paths
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p in paths if p != ADAPTER
           for m in imports(p) if offending(m, ("sslyze", "nassl"))]
    assert bad == []
