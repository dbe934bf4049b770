"""Helpers for the portfolio tests: constructed results, slow TLS servers, members files.

``make_result`` builds a real ``TargetResult`` through the baseline (aggregation and grading are the
real code); ``TLSServer`` is a small threaded HTTPS server with a trustme certificate, optional
response delay and configurable headers, restartable with another configuration between two runs.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.baseline import load_baseline
from scanner.models import Finding, Status, Target, TargetResult
from scanner.targets import domain, endpoint
from tests.testbed.cli import pledgescan as run
from tests.testbed.reports import feeding

HSTS = {"Strict-Transport-Security": "max-age=63072000; includeSubDomains"}


def pledgescan(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The command line, with terminal tables 200 columns wide."""
    return run(*args, timeout=timeout, env={"COLUMNS": "200"})


def scan_args(store: str, servers: dict[str, tuple[str, int]], ca_path: Path, *extra: str,
              timeout: float = 5) -> list[str]:
    """``scan`` of control H2 on ``servers`` (name -> address, port: each one ``--resolve``d), trusting
    ``ca_path``, recorded in ``store``."""
    args = ["scan", "--store", store, "--only", "H2", "--ca-bundle", str(ca_path),
            "--timeout", f"{timeout:g}", *extra]
    for host, (addr, port) in servers.items():
        args += ["--resolve", f"{host}:{port}:{addr}"]
    return args


def make_target(url: str, member: str | None = None) -> Target:
    return endpoint(url, member=member, member_name=member and member.title()) if "/" in url else \
        domain(url, member=member, member_name=member and member.title())


def record_run(store: Any, results: list[TargetResult], members: list[dict[str, Any]]) -> int:
    """Record ``results`` as one finished run of ``store`` (a ``scanner.history.store.Store``), the
    members file ``members``; the run's id."""
    targets = [make_target(r.target, r.member) for r in results]
    with store.start_run(targets, baseline_id="pledge4", baseline_version="1", tool_version="0",
                         members=members) as rec:
        for r in results:
            rec.on_result(r, None)
    return rec.run_id


def make_result(target: Target, statuses: dict[str, str] | None = None,
                default: str = "pass") -> TargetResult:
    """A graded result: every control of the target's kind gets ``default`` unless named in ``statuses``."""
    b = load_baseline()
    statuses = statuses or {}
    controls = []
    for c in b.controls_for(target.kind):
        st = Status(statuses.get(c.id, default))
        f = Finding(check=feeding(c.id), control=c.id, status=st, title=f"{c.title}: {st.value}",
                    detail=f"constructed {st.value}",
                    remediation="Fix it." if st in (Status.FAIL, Status.WARN) else None)
        controls.append(b.control_result(c, [f]))
    grade, score, decided, applicable = b.grade(controls)
    return TargetResult(member=target.member, member_name=target.member_name, kind=target.kind,
                        target=target.target, grade=grade, score=score, decided=decided,
                        applicable=applicable, controls=tuple(controls),
                        findings=tuple(f for c in controls for f in c.findings))


# -- a small HTTPS server -----------------------------------------------------------------------------------
@dataclass
class ServerConfig:
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before each response


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "test"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        cfg: ServerConfig = self.server.cfg  # type: ignore[attr-defined]
        if cfg.delay:
            time.sleep(cfg.delay)
        body = b"<!doctype html><title>ok</title><p>ok</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in cfg.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # scanners abort handshakes on purpose: keep the test output quiet


class TLSServer:
    """HTTPS on ADDR:PORT with a certificate for ``names`` issued by ``ca`` (trustme)."""

    def __init__(self, ca: Any, addr: str, port: int, names: list[str], cfg: ServerConfig | None = None,
                 expired: bool = False) -> None:
        self.ca, self.addr, self.port, self.names = ca, addr, port, names
        self.cfg = cfg or ServerConfig()
        self.expired = expired
        self._srv: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TLSServer:
        import datetime as dt

        kw: dict[str, Any] = {}
        if self.expired:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            kw = {"not_before": now - dt.timedelta(days=60), "not_after": now - dt.timedelta(days=1)}
        cert = self.ca.issue_cert(*self.names, **kw)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(ctx)
        srv = _Server((self.addr, self.port), _Handler)
        srv.cfg = self.cfg  # type: ignore[attr-defined]
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        self._srv = srv
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._srv:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None

    def restart(self, cfg: ServerConfig | None = None, expired: bool | None = None) -> None:
        self.stop()
        if cfg is not None:
            self.cfg = cfg
        if expired is not None:
            self.expired = expired
        self.start()


def free_port(addr: str) -> int:
    with socket.socket() as s:
        s.bind((addr, 0))
        return int(s.getsockname()[1])


def write_members(path: Path, members: list[dict[str, Any]]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"members": members}, sort_keys=False))
    return path
