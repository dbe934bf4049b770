"""A real Knot DNS authoritative server with signed test zones, for the D1-D6 tests.

Layout (all on 127.0.40.0/24):

* ``127.0.40.1:53`` knotd serving ``pledge.test.`` (signed; its DS is the tests' trust anchor) and the
  delegated children ``good.`` (signed, DS in the parent), ``bogus.`` (signed, the parent's DS matches
  no DNSKEY) and ``nothing.`` (unsigned, no records: insecure delegation). Weak domains live inside the
  parent zone: ``weak.`` (SPF +all, DMARC p=none pct=10, MX without MTA-STS), ``overlimit.`` (SPF over
  the 10-lookup limit via nested includes), ``dangling.`` (CNAMEs to names that do not exist).
* ``127.0.40.9:53`` a UDP socket that reads and drops every query (the timeout case).
* ``127.0.40.2:443`` (optional, ``MtaStsServer``) HTTPS serving the MTA-STS policy of ``good.``.

Keys are generated with ``keymgr`` before knotd starts (manual key policy), so the child DS records are
written into the parent zone file up front; knotd then signs every zone on load.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.testbed.proc import require_tool, stop_process, track

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KEYMGR = shutil.which("keymgr") or "/usr/sbin/keymgr"
KDIG = shutil.which("kdig") or "/usr/bin/kdig"

ADDR = "127.0.40.1"
PORT = 53
SILENT_ADDR = "127.0.40.9"
MTA_STS_ADDR = "127.0.40.2"
PARENT = "pledge.test"
SIGNED_CHILDREN = ("good", "bogus", "optout")
BAD_DS = "11111 13 2 " + "AB" * 32
STS_POLICY = "version: STSv1\nmode: enforce\nmx: mx.good.pledge.test\nmax_age: 604800\n"


def knot_available() -> bool:
    return all(Path(p).exists() for p in (KNOTD, KEYMGR, KDIG))


def require_knot() -> None:
    """Skip locally when Knot is absent; fail loudly in CI, which installs it."""
    require_tool(knot_available(), "knot / knot-dnsutils", "apt-get install knot knot-dnsutils")


def _soa(origin: str) -> str:
    return (f"$ORIGIN {origin}.\n$TTL 300\n"
            f"@ SOA ns.{PARENT}. hostmaster.{PARENT}. 1 3600 600 86400 300\n"
            f"@ NS ns.{PARENT}.\n")


def child_zones() -> dict[str, str]:
    good = _soa(f"good.{PARENT}") + f"""\
@ TXT "v=spf1 mx -all"
@ MX 10 mx
@ CAA 0 issue "letsencrypt.org"
@ CAA 0 iodef "mailto:security@good.{PARENT}"
@ A 127.0.40.3
mx A 127.0.40.3
www CNAME @
mta-sts A {MTA_STS_ADDR}
_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@good.{PARENT}"
_mta-sts TXT "v=STSv1; id=20240101T000000"
_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tls-reports@good.{PARENT}"
"""
    bogus = _soa(f"bogus.{PARENT}") + '@ TXT "v=spf1 -all"\n'
    nothing = _soa(f"nothing.{PARENT}")
    # Signed with NSEC3 opt-out: its unsigned child's missing DS is proven by an opt-out span, as in
    # .com/.org (RFC 5155 7.2.4), not by an NSEC3 matching the child's name.
    optout = _soa(f"optout.{PARENT}") + f'@ TXT "v=spf1 -all"\nunsigned NS ns.{PARENT}.\n'
    unsigned = _soa(f"unsigned.optout.{PARENT}") + '@ TXT "v=spf1 -all"\n'
    return {f"good.{PARENT}": good, f"bogus.{PARENT}": bogus, f"nothing.{PARENT}": nothing,
            f"optout.{PARENT}": optout, f"unsigned.optout.{PARENT}": unsigned}


def parent_zone(ds: dict[str, list[str]]) -> str:
    lines = [_soa(PARENT), f"ns A {ADDR}\n"]
    for child in ("good", "bogus", "nothing", "optout"):
        lines.append(f"{child} NS ns.{PARENT}.\n")
    for child in ("good", "optout"):
        for rec in ds.get(f"{child}.{PARENT}", []):
            lines.append(f"{child} DS {rec}\n")
    lines.append(f"bogus DS {BAD_DS}\n")
    # Weak domains inside the parent zone (no zone cut: their DNSSEC status is the parent's).
    lines.append(f"""\
weak TXT "v=spf1 +all"
_dmarc.weak TXT "v=DMARC1; p=none; pct=10"
weak MX 10 mx.weak
mx.weak A 127.0.40.3
dangling TXT "v=spf1 -all"
mta-sts.dangling CNAME gone.{PARENT}.
shop.dangling CNAME hop.dangling
hop.dangling CNAME deleted-app.{PARENT}.
www.dangling CNAME dangling
redirect TXT "v=spf1 redirect=n1a.spf.{PARENT}"
allredirect TXT "v=spf1 -all redirect=plusall.spf.{PARENT}"
plusall.spf TXT "v=spf1 +all"
badinclude TXT "v=spf1 include:nospf.spf.{PARENT} -all"
nospf.spf A 192.0.2.9
overlimit TXT "v=spf1 include:n1.spf.{PARENT} include:n2.spf.{PARENT} include:n3.spf.{PARENT} -all"
""")
    for n in (1, 2, 3):
        kids = " ".join(f"include:n{n}{k}.spf.{PARENT}" for k in "abc")
        lines.append(f'n{n}.spf TXT "v=spf1 {kids} ~all"\n')
        for k in "abc":
            lines.append(f'n{n}{k}.spf TXT "v=spf1 ip4:192.0.2.{n} -all"\n')
    return "".join(lines)


def knot_conf(d: Path) -> str:
    zones = [PARENT, *(f"{c}.{PARENT}" for c in (*SIGNED_CHILDREN, "nothing")), f"unsigned.optout.{PARENT}"]
    zone_lines = []
    for z in zones:
        signed = z == PARENT or z.removesuffix(f".{PARENT}") in SIGNED_CHILDREN
        policy = "optout" if z == f"optout.{PARENT}" else "manual"
        zone_lines.append(f"  - domain: {z}\n    file: {d}/zones/{z}.zone\n"
                          + (f"    dnssec-signing: on\n    dnssec-policy: {policy}\n" if signed else ""))
    return f"""\
server:
    rundir: "{d}/run"
    listen: {ADDR}@{PORT}
    background-workers: 1
    tcp-workers: 1
    udp-workers: 1
database:
    storage: "{d}/db"
    kasp-db: "{d}/keys"
log:
  - target: "{d}/knot.log"
    any: info
policy:
  - id: manual
    manual: on
    algorithm: ecdsap256sha256
    nsec3: off
  - id: optout
    manual: on
    algorithm: ecdsap256sha256
    nsec3: on
    nsec3-opt-out: on
    nsec3-iterations: 0
    nsec3-salt-length: 0
template:
  - id: default
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
{"".join(zone_lines)}"""


@dataclass
class KnotServer:
    """knotd with the test zones, plus the silent (timeout) name server."""

    dir: Path
    proc: subprocess.Popen[bytes] | None = None
    silent: socket.socket | None = None
    trust_anchor: Path | None = None

    @property
    def nameserver(self) -> str:
        return f"{ADDR}:{PORT}"

    @property
    def silent_nameserver(self) -> str:
        return f"{SILENT_ADDR}:{PORT}"

    def _keymgr(self, conf: Path, *args: str) -> str:
        out = subprocess.run([KEYMGR, "-c", str(conf), *args], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"keymgr {' '.join(args)} failed: {out.stderr or out.stdout}")
        return out.stdout

    def start(self) -> KnotServer:
        d = self.dir
        for sub in ("run", "db", "keys", "zones"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        conf = d / "knot.conf"
        conf.write_text(knot_conf(d))
        ds: dict[str, list[str]] = {}
        for zone in (PARENT, *(f"{c}.{PARENT}" for c in SIGNED_CHILDREN)):
            self._keymgr(conf, zone, "generate", "algorithm=ecdsap256sha256", "ksk=yes", "zsk=yes")
            ds[zone] = [_ds_rdata(line) for line in self._keymgr(conf, zone, "ds").splitlines() if line]
        for name, text in child_zones().items():
            (d / "zones" / f"{name}.zone").write_text(text)
        (d / "zones" / f"{PARENT}.zone").write_text(parent_zone(ds))
        self.trust_anchor = d / "trust-anchor.txt"
        self.trust_anchor.write_text("".join(f"{PARENT}. IN DS {r}\n" for r in ds[PARENT]))
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.silent.bind((SILENT_ADDR, PORT))  # never read: queries are dropped, clients time out
        self.proc = track(subprocess.Popen([KNOTD, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE, start_new_session=True))
        try:
            self._wait_signed()
        except Exception:
            self.stop()
            raise
        return self

    def _wait_signed(self, timeout: float = 20.0) -> None:
        """Poll with kdig +dnssec until every signed zone answers with an RRSIG over its DNSKEY."""
        names = [PARENT, *(f"{c}.{PARENT}" for c in SIGNED_CHILDREN)]
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc and self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = (self.dir / "knot.log").read_text() if (self.dir / "knot.log").exists() else ""
                raise RuntimeError(f"knotd exited: {err}\n{log[-2000:]}")
            ok = 0
            for name in names:
                out = subprocess.run([KDIG, f"@{ADDR}", "-p", str(PORT), "+dnssec", "+norec", "+timeout=1",
                                      "+retry=0", name, "DNSKEY"], capture_output=True, text=True)
                if "RRSIG" in out.stdout and "NOERROR" in out.stdout:
                    ok += 1
            if ok == len(names):
                return
            time.sleep(0.2)
        raise RuntimeError("knotd did not sign the test zones in time")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None
        if self.silent:
            self.silent.close()
            self.silent = None


def _ds_rdata(line: str) -> str:
    """'zone. DS 1234 13 2 HEX' (keymgr output) -> '1234 13 2 HEX'."""
    parts = line.split()
    i = parts.index("DS")
    return " ".join(parts[i + 1:])


def start_knot() -> KnotServer:
    return KnotServer(Path(tempfile.mkdtemp(prefix="pledgescan-knot-"))).start()


class MtaStsServer:
    """HTTPS on 127.0.40.2:443 serving good.pledge.test's MTA-STS policy, with a trustme certificate."""

    def __init__(self, ca_pem: Path, workdir: Path) -> None:
        import trustme

        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert(f"mta-sts.good.{PARENT}")
        self.ca_pem = ca_pem
        self.ca.cert_pem.write_to_path(str(ca_pem))
        self.workdir = workdir
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> MtaStsServer:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                if self.path == "/.well-known/mta-sts.txt":
                    body = STS_POLICY.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                else:
                    body = b"not found"
                    self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((MTA_STS_ADDR, 443), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.cert.configure_cert(ctx)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
