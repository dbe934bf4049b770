"""Every TLS connection that sslyze (and the fast prober, on sslyze's own connections) opens draws on the
address's politeness: one request start of its rate budget each, and an exact count per target.

sslyze opens its sockets in its own worker threads through one function, which the adapter hooks once
(``sslyze_adapter.install_socket_hook``); the hook consults the gate
registered for the server's (address, port, name) while a TLS collector runs. Sockets of servers with no
gate (sslyze used on its own) are opened exactly as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from scanner.collectors.tls import sslyze_adapter
from scanner.net.politeness import Politeness

GATE_WAIT_S = 600.0  # a rate wait longer than this is a failed connection for sslyze

_lock = threading.Lock()
_gates: dict[tuple[str, int, str], Gate] = {}
_installed = False


@dataclass
class Gate:
    """The politeness of one TLS collector run, and the connections its probers opened."""

    address: str
    politeness: Politeness
    loop: asyncio.AbstractEventLoop
    connections: int = 0

    def enter(self) -> None:
        """Blocking (sslyze's threads): wait for the address's rate budget, count the connection."""
        future = asyncio.run_coroutine_threadsafe(self.politeness.request(self.address), self.loop)
        try:
            future.result(timeout=GATE_WAIT_S)
        except Exception as exc:  # a stopped loop or an endless wait: a failed connection, not a hang
            future.cancel()
            raise OSError(f"politeness gate: {type(exc).__name__}") from None
        with _lock:
            self.connections += 1


def _hook(server_location: Any) -> None:
    key = (server_location.ip_address or "", server_location.port, server_location.hostname)
    with _lock:
        gate = _gates.get(key)
    if gate is not None:
        gate.enter()


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        sslyze_adapter.install_socket_hook(_hook)
        _installed = True


@contextlib.contextmanager
def gated(address: str, port: int, hostname: str, politeness: Politeness,
          loop: asyncio.AbstractEventLoop) -> Iterator[Gate]:
    """While the block runs, sslyze's connections to (address, port, hostname) go through the gate."""
    _install()
    gate = Gate(address, politeness, loop)
    key = (address, port, hostname)
    with _lock:
        previous = _gates.get(key)
        _gates[key] = gate
    try:
        yield gate
    finally:
        with _lock:
            if previous is not None:
                _gates[key] = previous
            else:
                _gates.pop(key, None)
