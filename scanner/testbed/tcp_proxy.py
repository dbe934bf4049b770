"""A TCP proxy for the testbed and the benchmarks: it counts what an address feels (connections open at
once, every connection's start) and can put latency between the scanner and local servers (``tc netem``
is not available in this sandbox).

    proxy = TcpProxy([(("127.0.100.1", 18443), ("127.0.100.2", 18443))], delay=0.025).start()
    ...                    # every byte waits 25 ms each way: a 50 ms round trip
    proxy.stop(); proxy.peak_open, proxy.accepted

One thread, one ``selectors`` loop. A connection counts as open from its accept until either side closes;
in every loop turn closes are handled before accepts, so the peak is what the server side really saw.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

Address = tuple[str, int]


@dataclass
class _Pipe:
    client: socket.socket
    upstream: socket.socket
    listen: Address
    open: bool = True
    opened: float = field(default_factory=time.monotonic)
    out: dict[int, bytearray] = field(default_factory=dict)  # fileno -> bytes waiting to be written
    eof: set[int] = field(default_factory=set)  # filenos whose peer finished sending (shut down when drained)


class TcpProxy:
    """Forwards each (listen -> upstream) pair; ``delay`` seconds added to each direction."""

    def __init__(self, routes: list[tuple[Address, Address]], delay: float = 0.0,
                 backlog: int = 1024) -> None:
        self.routes = dict(routes)
        self.delay = delay
        self.backlog = backlog
        self.open_now = 0
        self.peak_open = 0
        self.accepted: list[tuple[float, Address]] = []  # (monotonic time, listening address)
        self.lifetimes: list[tuple[float, float, Address]] = []  # (opened, closed, listening address)
        self.peak_by_address: dict[str, int] = {}
        self._open_by_address: dict[str, int] = {}
        self._sel = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, _Pipe, socket.socket, bytes | None]] = []
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[socket.socket] = []
        self._pipes: dict[int, tuple[_Pipe, socket.socket]] = {}  # fileno -> (pipe, the other socket)

    def start(self) -> TcpProxy:
        for listen in self.routes:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(listen)
            s.listen(self.backlog)
            s.setblocking(False)
            self._sel.register(s, selectors.EVENT_READ, ("listen", listen))
            self._listeners.append(s)
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        for s in self._listeners:
            s.close()
        for pipe, _ in list(self._pipes.values()):
            self._close(pipe)
        self._sel.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            timeout = 0.05
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0][0] - time.monotonic()))
            events = self._sel.select(timeout)
            accepts = []
            for key, mask in events:
                if key.data[0] == "listen":
                    accepts.append(key)
                    continue
                if mask & selectors.EVENT_READ:
                    self._read(key.fileobj)  # type: ignore[arg-type]
                if mask & selectors.EVENT_WRITE:
                    self._flush(key.fileobj)  # type: ignore[arg-type]
            self._due()
            for key in accepts:  # closes first, then accepts: the peak is what the server saw
                self._accept(key.fileobj, key.data[1])  # type: ignore[arg-type]

    def _accept(self, listener: socket.socket, listen: Address) -> None:
        # One per turn: a connection that arrived after this turn's select waits for the next turn, where
        # the closes that preceded it are seen first.
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(self.routes[listen], timeout=5)
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pipe = _Pipe(client, upstream, listen)
        self._pipes[client.fileno()] = (pipe, upstream)
        self._pipes[upstream.fileno()] = (pipe, client)
        self._sel.register(client, selectors.EVENT_READ, ("pipe",))
        self._sel.register(upstream, selectors.EVENT_READ, ("pipe",))
        self.accepted.append((time.monotonic(), listen))
        self.open_now += 1
        self.peak_open = max(self.peak_open, self.open_now)
        n = self._open_by_address.get(listen[0], 0) + 1
        self._open_by_address[listen[0]] = n
        self.peak_by_address[listen[0]] = max(self.peak_by_address.get(listen[0], 0), n)

    def _read(self, sock: socket.socket) -> None:
        entry = self._pipes.get(sock.fileno())
        if entry is None:
            return
        pipe, other = entry
        # Read until the socket has nothing more: a client that sent its last bytes and closed (a TLS
        # close_notify, then FIN) is seen closed in this turn, before this turn's accepts; one recv would
        # leave the FIN for the next turn and count the closed connection beside the next one.
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._mark_closed(pipe)
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(sock)
            self._schedule(pipe, other, data or None)
            if not data:
                return

    def _schedule(self, pipe: _Pipe, dest: socket.socket, data: bytes | None) -> None:
        if self.delay <= 0:
            self._deliver(pipe, dest, data)
            return
        heapq.heappush(self._timers, (time.monotonic() + self.delay, next(self._seq), pipe, dest, data))

    def _due(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, pipe, dest, data = heapq.heappop(self._timers)
            self._deliver(pipe, dest, data)

    def _deliver(self, pipe: _Pipe, dest: socket.socket, data: bytes | None) -> None:
        if dest.fileno() < 0:
            return
        fd = dest.fileno()
        if data is None:
            pipe.eof.add(fd)
        else:
            pipe.out.setdefault(fd, bytearray()).extend(data)
        self._flush(dest)

    def _flush(self, sock: socket.socket) -> None:
        entry = self._pipes.get(sock.fileno())
        if entry is None:
            return
        pipe, _ = entry
        fd = sock.fileno()
        buf = pipe.out.get(fd)
        try:
            while buf:
                n = sock.send(buf)
                del buf[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._close(pipe)
            return
        events = selectors.EVENT_READ if self._reading(sock) else 0
        if buf:
            events |= selectors.EVENT_WRITE
        elif fd in pipe.eof:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        self._reregister(sock, events)
        if not self._reading(pipe.client) and not self._reading(pipe.upstream) and not any(pipe.out.values()):
            self._close(pipe)

    def _reading(self, sock: socket.socket) -> bool:
        try:
            return bool(self._sel.get_key(sock).events & selectors.EVENT_READ)
        except (KeyError, ValueError):
            return False

    def _reregister(self, sock: socket.socket, events: int) -> None:
        try:
            key = self._sel.get_key(sock)
        except (KeyError, ValueError):
            key = None
        if key is None:
            if events:
                self._sel.register(sock, events, ("pipe",))
        elif events:
            self._sel.modify(sock, events, key.data)
        else:
            self._sel.unregister(sock)

    def _mark_closed(self, pipe: _Pipe) -> None:
        if pipe.open:
            pipe.open = False
            self.lifetimes.append((pipe.opened, time.monotonic(), pipe.listen))
            self.open_now -= 1
            self._open_by_address[pipe.listen[0]] -= 1

    def _close(self, pipe: _Pipe) -> None:
        self._mark_closed(pipe)
        for s in (pipe.client, pipe.upstream):
            fd = s.fileno()
            if fd >= 0:
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(s)
                self._pipes.pop(fd, None)
                s.close()
