"""Small pure-Python test servers (``ssl`` + threads): HTTPS, plain HTTP, and hostile ones.

They serve one fixed HTTP response to every request, which is all the scanner's testbed and
``pledgescan demo`` need; no nginx, no root (on high ports)::

    srv = start_https_server("127.0.10.1", 18443, chain_pem, key_pem,
                             response=HttpResponseSpec(headers=[("Server", "test")]))
    ...
    srv.stop()

``start_http_server`` serves plain HTTP (e.g. a redirect to https://); ``start_stalling_server`` accepts
and never answers; ``start_garbage_server`` answers any connection with bytes that are not TLS.
Every ``start_*`` returns a ``RunningServer`` (also a context manager) once the port is listening.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

MAX_REQUEST_HEAD = 16_384


@dataclass(frozen=True)
class HttpResponseSpec:
    """The fixed response a test server sends: status, headers in order (duplicates allowed), body."""

    status: int = 200
    reason: str = "OK"
    headers: list[tuple[str, str]] = field(
        default_factory=lambda: [("Content-Type", "text/html; charset=utf-8")]
    )
    body: bytes = b"<!doctype html><title>pledgescan testbed</title><p>hello</p>\n"

    def to_bytes(self, head_only: bool = False) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {self.reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        if not any(k.lower() == "content-length" for k, _ in self.headers):
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


def redirect_response(location: str, status: int = 301) -> HttpResponseSpec:
    """A redirect (e.g. the port-80 server of an HTTPS site)."""
    return HttpResponseSpec(
        status=status,
        reason="Moved Permanently" if status == 301 else "Redirect",
        headers=[("Location", location), ("Content-Type", "text/plain")],
        body=b"",
    )


class RunningServer:
    """A listening server run by a background thread; ``stop()`` closes it and every connection."""

    def __init__(self, address: str, port: int, handler: object, name: str) -> None:
        self.address = address
        self.port = port
        self.name = name
        self._handler = handler
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((address, port))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name=f"testbed-{name}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            self._handler(conn, self._stop)  # type: ignore[operator]
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self) -> None:
        """Stop accepting, close open connections, wait for the accept thread."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        with self._lock:
            for c in list(self._conns):
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    c.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url_port(self) -> str:
        return f"{self.address}:{self.port}"


def _read_head(conn: socket.socket, timeout: float = 10.0) -> bytes:
    conn.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST_HEAD:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _request_path(head: bytes) -> str:
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    return parts[1].decode("latin-1").split("?", 1)[0] if len(parts) >= 2 else "/"


def _http_handler(response: HttpResponseSpec, routes: dict[str, HttpResponseSpec] | None = None) -> object:
    """Serve ``routes[path]`` when the request path is listed, else ``response``."""

    def handle(conn: socket.socket, _stop: threading.Event) -> None:
        head = _read_head(conn)
        if not head:
            return
        chosen = (routes or {}).get(_request_path(head), response)
        conn.sendall(chosen.to_bytes(head_only=head.startswith(b"HEAD ")))

    return handle


def make_server_context(
    cert_chain_pem: bytes,
    key_pem: bytes,
    *,
    tls_min: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    tls_max: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
    ciphers: str | None = None,
    weak: bool = False,
) -> ssl.SSLContext:
    """A server ``SSLContext``. ``weak=True`` (or a minimum below TLS 1.2) drops OpenSSL's security level
    to 0 so that RSA-1024, SHA-1 certificates and TLS 1.0/1.1 load; ``ciphers`` is an OpenSSL TLS 1.2
    cipher string."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if weak or tls_min < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")
    elif ciphers:
        ctx.set_ciphers(ciphers)
    with warnings.catch_warnings():  # TLSVersion.TLSv1/TLSv1_1 are deprecated: on purpose here
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = tls_min
        ctx.maximum_version = tls_max
    # ssl.load_cert_chain only reads files: write them to a private temporary directory.
    with tempfile.TemporaryDirectory(prefix="pledgescan-tls-") as tmp:
        chain, key = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
        chain.write_bytes(cert_chain_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_pem)
        ctx.load_cert_chain(chain, key)
    return ctx


def start_https_server(
    address: str,
    port: int,
    cert_chain_pem: bytes,
    key_pem: bytes,
    *,
    tls_min: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    tls_max: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
    ciphers: str | None = None,
    weak: bool = False,
    response: HttpResponseSpec | None = None,
    handshake_timeout: float = 10.0,
    routes: dict[str, HttpResponseSpec] | None = None,
) -> RunningServer:
    """An HTTPS server with the given chain (leaf first) and key, serving ``response`` to every request
    (or ``routes[path]`` for the paths listed there)."""
    ctx = make_server_context(
        cert_chain_pem, key_pem, tls_min=tls_min, tls_max=tls_max, ciphers=ciphers, weak=weak
    )
    inner = _http_handler(response or HttpResponseSpec(), routes)

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(handshake_timeout)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            inner(tls, stop)  # type: ignore[operator]

    return RunningServer(address, port, handle, f"https-{address}-{port}")


def start_http_server(address: str, port: int, response: HttpResponseSpec | None = None,
                      routes: dict[str, HttpResponseSpec] | None = None) -> RunningServer:
    """A plain-HTTP server answering every request with ``response`` (see ``redirect_response``),
    or ``routes[path]`` for the paths listed there."""
    return RunningServer(
        address, port, _http_handler(response or HttpResponseSpec(), routes), f"http-{address}-{port}"
    )


def start_stalling_server(address: str, port: int) -> RunningServer:
    """Accepts connections and never sends a byte (a handshake that stalls) until stopped."""

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(0.2)
        while not stop.is_set():
            try:
                if not conn.recv(4096):
                    return
            except TimeoutError:
                continue

    return RunningServer(address, port, handle, f"stall-{address}-{port}")


GARBAGE = b"\x00\xffNOT TLS AT ALL\r\n" + bytes(range(256)) * 4


def start_garbage_server(address: str, port: int, payload: bytes = GARBAGE) -> RunningServer:
    """Answers any connection with bytes that are not TLS, then closes it."""

    def handle(conn: socket.socket, _stop: threading.Event) -> None:
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            conn.recv(4096)
        conn.sendall(payload)

    return RunningServer(address, port, handle, f"garbage-{address}-{port}")


# -- a ROBOT oracle (a Bleichenbacher-style RSA padding oracle, for the scanner's own tests) -------------

_RECORD_HEADER = 5
_MAX_RECORD = 18_432  # TLS's largest record (2^14 + 2048): anything longer is not TLS, just forwarded
_CHANGE_CIPHER_SPEC, _HANDSHAKE, _CLIENT_KEY_EXCHANGE = 0x14, 0x16, 0x10


def _pms_badly_padded(record: bytes, n: int, d: int) -> bool:
    """Is ``record`` an RSA ClientKeyExchange whose decrypted block does not start 00 02 (PKCS#1 v1.5)?"""
    body = record[_RECORD_HEADER:]
    if len(body) < 6 or body[0] != _CLIENT_KEY_EXCHANGE:
        return False
    size = int.from_bytes(body[4:6], "big")
    encrypted = body[6:6 + size]
    k = (n.bit_length() + 7) // 8
    if len(encrypted) != k:
        return False
    block = pow(int.from_bytes(encrypted, "big"), d, n).to_bytes(k, "big")
    return block[:2] != b"\x00\x02"


def _hang_up(conn: socket.socket) -> None:
    """Close without a word, the same way every time: FIN first, then read what the client still sends
    until it closes (closing with unread bytes would reset the connection, or not, by timing)."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(5)
        while conn.recv(65_536):
            pass


def _first_record(sock: socket.socket) -> bytes:
    """Read from ``sock`` until one whole TLS record is in (and what came with it), the peer closes, or
    reading fails: what was read."""
    got = b""
    with contextlib.suppress(OSError):
        while len(got) < _RECORD_HEADER + int.from_bytes(got[3:5] or b"\0", "big"):
            data = sock.recv(65_536)
            if not data:
                break
            got += data
    return got


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy what ``src`` sends to ``dst`` until ``src`` ends, then end ``dst``'s side (the proxies here)."""
    with contextlib.suppress(OSError):
        while data := src.recv(65_536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def start_robot_oracle(address: str, port: int, upstream: tuple[str, int], key_pem: bytes) -> RunningServer:
    """A TCP proxy to the TLS server at ``upstream`` (RSA key exchange, its private key ``key_pem``) that
    turns it into a ROBOT oracle: a client key exchange whose decrypted block does not start with 00 02
    gets the connection closed without a word, every other byte goes through (so handshakes complete and
    the other wrong paddings get the server's own alert). An RSA key exchange server that answers some bad
    paddings differently, as vulnerable servers did."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the ROBOT oracle needs an RSA key")
    numbers = key.private_numbers()
    n, d = numbers.public_numbers.n, numbers.d

    def handle(conn: socket.socket, _stop: threading.Event) -> None:
        conn.settimeout(10)
        with socket.create_connection(upstream, timeout=10) as up:
            back = threading.Thread(target=_pump, args=(up, conn), daemon=True)
            back.start()
            pending, inspecting = b"", True
            while data := conn.recv(65_536):
                if not inspecting:
                    up.sendall(data)
                    continue
                pending += data
                out = b""
                while len(pending) >= _RECORD_HEADER:
                    length = int.from_bytes(pending[3:5], "big")
                    if length > _MAX_RECORD or len(pending) < _RECORD_HEADER + length:
                        break
                    record, pending = pending[:_RECORD_HEADER + length], pending[_RECORD_HEADER + length:]
                    if record[0] == _CHANGE_CIPHER_SPEC:  # encrypted from here on: nothing more to read
                        inspecting = False
                    elif record[0] == _HANDSHAKE and _pms_badly_padded(record, n, d):
                        up.close()
                        _hang_up(conn)  # the oracle: silence and a closed connection
                        return
                    out += record
                if not inspecting or len(pending) > _RECORD_HEADER + _MAX_RECORD:
                    out, pending, inspecting = out + pending, b"", False
                up.sendall(out)
            with contextlib.suppress(OSError):
                up.shutdown(socket.SHUT_WR)
            back.join(timeout=10)

    return RunningServer(address, port, handle, f"robot-oracle-{address}-{port}")


def start_old_server_hello(address: str, port: int, upstream: tuple[str, int], *,
                           no_renegotiation_info: bool = False, deflate: bool = False) -> RunningServer:
    """A TCP proxy to the TLS server at ``upstream`` that answers as servers from before 2009 did, to the
    clients that offer DEFLATE compression (old OpenSSL builds; nassl's legacy client, which sslyze's
    renegotiation and compression commands use): the ServerHello without the renegotiation_info extension
    (``no_renegotiation_info``: RFC 5746 unknown) and/or choosing DEFLATE (``deflate``). The rest goes
    through untouched, so a handshake that reads the ServerHello sees an old server, one that goes on to
    the Finished messages fails (the transcript changed); clients offering no compression (every current
    one) see the upstream server as it is."""

    def rewrite(hello_body: bytes) -> bytes:
        at = 2 + 32
        at += 1 + hello_body[at]
        head, comp, rest = bytearray(hello_body[:at + 2]), hello_body[at + 2], hello_body[at + 3:]
        comp = 1 if deflate else comp
        if len(rest) >= 2:
            exts, kept, i = rest[2:2 + int.from_bytes(rest[:2], "big")], b"", 0
            while i + 4 <= len(exts):
                kind, size = int.from_bytes(exts[i:i + 2], "big"), int.from_bytes(exts[i + 2:i + 4], "big")
                if not (no_renegotiation_info and kind == 0xFF01):
                    kept += exts[i:i + 4 + size]
                i += 4 + size
            rest = len(kept).to_bytes(2, "big") + kept if kept else b""
        return bytes(head) + bytes([comp]) + rest

    def offers_deflate(client_hello: bytes) -> bool:
        try:
            body = client_hello[_RECORD_HEADER + 4:]
            at = 2 + 32
            at += 1 + body[at]
            at += 2 + int.from_bytes(body[at:at + 2], "big")
            return 1 in body[at + 1:at + 1 + body[at]]
        except IndexError:
            return False

    def forward_rewritten(up: socket.socket, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            pending = _first_record(up)
            length = int.from_bytes(pending[3:5], "big") if len(pending) >= _RECORD_HEADER else 0
            record, after = pending[:_RECORD_HEADER + length], pending[_RECORD_HEADER + length:]
            payload = record[_RECORD_HEADER:]
            if record[:1] == bytes([_HANDSHAKE]) and payload[:1] == b"\x02" and len(payload) >= 4:
                size = int.from_bytes(payload[1:4], "big")
                hello = rewrite(payload[4:4 + size])
                payload = b"\x02" + len(hello).to_bytes(3, "big") + hello + payload[4 + size:]
                record = record[:3] + len(payload).to_bytes(2, "big") + payload
            conn.sendall(record + after)
            while data := up.recv(65_536):
                conn.sendall(data)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)

    def handle(conn: socket.socket, _stop: threading.Event) -> None:
        conn.settimeout(10)
        first = _first_record(conn)
        if not first:
            return
        with socket.create_connection(upstream, timeout=10) as up:
            up.sendall(first)
            answer = forward_rewritten if offers_deflate(first) else _pump
            back = threading.Thread(target=answer, args=(up, conn), daemon=True)
            back.start()
            _pump(conn, up)
            back.join(timeout=10)

    return RunningServer(address, port, handle, f"old-server-hello-{address}-{port}")
