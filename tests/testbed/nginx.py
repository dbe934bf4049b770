"""Run a real nginx (Debian's) with a generated configuration, as an unprivileged-path test server.

Usage::

    with NginxServer(servers_conf, name="tls") as ngx:   # servers_conf: one or more `server {}` blocks
        ...

``weak_openssl=True`` starts nginx with an OPENSSL_CONF at security level 0 and no minimum protocol,
so TLS 1.0/1.1, RSA-1024 and SHA-1 material load (Debian's OpenSSL 3 refuses them by default).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.testbed.proc import require_tool, stop_process, track

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

WEAK_OPENSSL_CONF = """\
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
CipherString = DEFAULT:@SECLEVEL=0
MinProtocol = None
"""


def nginx_available() -> bool:
    return Path(NGINX).exists()


def require_nginx() -> None:
    """Skip locally when nginx is absent; fail loudly in CI, which installs it."""
    require_tool(nginx_available(), "nginx", "apt-get install nginx-light")


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout}s")


class NginxServer:
    """One nginx master process with its own prefix directory; stopped on exit."""

    def __init__(self, servers_conf: str, name: str = "pledgescan-test", weak_openssl: bool = False,
                 listen: list[tuple[str, int]] | None = None, workdir: Path | None = None) -> None:
        self.servers_conf = servers_conf
        self.name = name
        self.weak_openssl = weak_openssl
        self.listen = listen or []
        self.dir = workdir or Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        d = self.dir
        return f"""
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp_body;
    proxy_temp_path {d}/tmp_proxy;
    fastcgi_temp_path {d}/tmp_fastcgi;
    uwsgi_temp_path {d}/tmp_uwsgi;
    scgi_temp_path {d}/tmp_scgi;
    default_type application/octet-stream;
    types {{ text/html html; text/plain txt; application/json json; text/css css;
             application/javascript js; }}
    server_tokens off;
{self.servers_conf}
}}
"""

    def start(self) -> NginxServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(self.config())
        env = dict(os.environ)
        if self.weak_openssl:
            ossl = self.dir / "openssl-weak.cnf"
            ossl.write_text(WEAK_OPENSSL_CONF)
            env["OPENSSL_CONF"] = str(ossl)
        test = subprocess.run([NGINX, "-t", "-p", str(self.dir), "-c", str(conf)], env=env,
                              capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError(f"nginx config rejected:\n{test.stderr}")
        self.proc = track(subprocess.Popen([NGINX, "-p", str(self.dir), "-c", str(conf)], env=env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                           start_new_session=True))
        try:
            for host, port in self.listen:
                wait_port(host, port)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
