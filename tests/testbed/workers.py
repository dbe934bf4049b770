"""Testbed of the distributed mode: Redis, `pledgescan worker` processes started and stopped by pid, a
counter of the TCP connections open to a server (read from the kernel's table, server side)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.testbed.cli import PLEDGESCAN

# The shared Redis, a database of the tests' own: 13, and under pytest-xdist 13 for worker gw0, 12 for gw1...
# (``redis_url`` empties pledgescan's keys of its database: two workers must not share one).
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_URL = os.environ.get("PLEDGESCAN_TEST_REDIS", f"redis://127.0.0.1:6379/{13 - _WORKER}")
ADDR = "127.0.140.{}"  # this module's block of test addresses


def redis_url() -> str:
    """The shared Redis (own DB number) without pledgescan's keys; skip locally when absent, fail in CI."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis not reachable at {REDIS_URL} but CI must have it (.ci/run starts it): {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    keys = list(client.scan_iter("pledgescan*"))
    if keys:
        client.delete(*keys)
    client.close()
    return REDIS_URL


class Workers:
    """`pledgescan worker` processes (each a Dramatiq main process and its children, in its own session)."""

    def __init__(self, broker: str, store: str, log_dir: Path) -> None:
        self.broker, self.store, self.log_dir = broker, store, log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, threads: int = 2, redelivery_after: float = 3.0) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"worker{len(self.procs)}.log", "wb")  # noqa: SIM115 (kept by Popen)
        proc = subprocess.Popen(
            [*PLEDGESCAN, "worker", "--broker", self.broker, "--store", self.store,
             "--processes", "1", "--threads", str(threads), "--redelivery-after", str(redelivery_after)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != "PLEDGESCAN_BROKER"})
        self.procs.append(proc)
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its children: its own process group (its pid), nothing else."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(proc)
            else:  # a child left behind by a main process that died first
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

    def logs(self) -> str:
        logs = sorted(self.log_dir.glob("worker*.log"))
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)


def established(addr: str, port: int) -> set[tuple[bytes, int]]:
    """The TCP connections ESTABLISHED on the server side of ``addr:port`` (IPv4), as (client address,
    client port), from one sock_diag dump of the kernel (the netlink query ``ss`` makes, states filtered
    in the kernel): one pass over the kernel's table, not /proc/net/tcp read page by page, whose pages
    are of different moments (what one pass still mixes: see ``ServerConnections``)."""
    req = struct.pack("=BBBxI", socket.AF_INET, socket.IPPROTO_TCP, 0, 1 << _TCP_ESTABLISHED) + bytes(48)
    msg = struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
    want = (port, ipaddress.IPv4Address(addr).packed)
    found: set[tuple[bytes, int]] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as s:
        s.sendall(msg + req)
        while True:
            data = s.recv(1 << 20)
            off = 0
            while off < len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR:
                    raise OSError("sock_diag dump refused by the kernel")
                body = off + 16  # struct inet_diag_msg: family, state, timer, retrans, then the socket id
                sport, dport = struct.unpack_from("!HH", data, body + 4)
                if (sport, data[body + 8:body + 12]) == want:
                    found.add((data[body + 24:body + 28], dport))
                off += (length + 3) & ~3


_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_NLM_F_REQUEST, _NLM_F_DUMP, _NLMSG_ERROR, _NLMSG_DONE = 0x1, 0x300, 2, 3
_TCP_ESTABLISHED = 1


class ServerConnections:
    """Connections established to ADDR:PORT, counted on the server side from the kernel's TCP table
    (a socket the client closed leaves ESTABLISHED at once, without waiting for the server program).

    A dump of the table is not one instant: the kernel walks its hash buckets one after the other, so
    a connection closed during the walk may be listed beside one opened after it. ``peak`` therefore
    counts only the connections present in two consecutive dumps: each of them was open from its row
    in the first dump to its row in the second, so all of them were open together in between (a lower
    bound of the true peak, never above it). Dumps follow each other about every millisecond."""

    def __init__(self, addr: str, port: int) -> None:
        self.addr, self.port = addr, port
        self.peak = 0
        self.samples = 0
        self.busy = 0  # samples with at least one connection open
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self) -> int:
        return len(established(self.addr, self.port))

    def _run(self) -> None:
        before: set[tuple[bytes, int]] = set()
        while not self._stop.is_set():
            now = established(self.addr, self.port)
            self.samples += 1
            self.busy += bool(now)
            self.peak = max(self.peak, len(before & now))
            before = now
            time.sleep(0.001)

    def __enter__(self) -> ServerConnections:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class OwnRedis:
    """A Redis server of the test's own (append-only file in a temporary directory), to be restarted."""

    def __init__(self, addr: str, port: int, data_dir: Path) -> None:
        self.addr, self.port, self.dir = addr, port, data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.addr}:{self.port}/0"

    def start(self) -> OwnRedis:
        import shutil

        import redis

        from tests.testbed.proc import require_tool

        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        require_tool(Path(exe).exists(), "redis-server")
        self.proc = subprocess.Popen(
            [exe, "--bind", self.addr, "--port", str(self.port), "--dir", str(self.dir),
             "--appendonly", "yes", "--save", "", "--protected-mode", "no", "--daemonize", "no"],
            stdout=open(self.dir / "redis.log", "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
        for _ in range(100):
            try:
                redis.Redis(host=self.addr, port=self.port, socket_connect_timeout=0.5).ping()
                return self
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError("the test's redis-server did not start: " + (self.dir / "redis.log").read_text())

    def stop(self) -> None:
        from tests.testbed.proc import stop_process

        stop_process(self.proc, timeout=10)  # SIGTERM: Redis writes its append-only file and exits
        self.proc = None
