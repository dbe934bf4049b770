"""Test servers for the exposure family (E1-E4), on 127.0.30.0/24, HTTPS with a trustme CA.

* nginx (``exposure_nginx``): one host with planted exposures (a real git repository in the web root,
  a .env with fake secrets, an autoindex /backup/ folder, a dump, a linked /media/ listing), and the
  traps that must give no finding: a catch-all admin-looking page, an SPA fallback, 403 to everything,
  a redirect of every unknown path to the home page.
* Apache (``exposure_apache``): Debian's phpMyAdmin and Adminer under mod_php, and mod_status's
  server-status, with a self-contained configuration (``apache2 -f``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.testbed.nginx import NginxServer, nginx_available, wait_port
from tests.testbed.proc import require_tool, stop_process, track

PORT = 8443
HOSTS = {
    "expose.test": "127.0.30.1",
    "catchall.test": "127.0.30.2",
    "spa.test": "127.0.30.3",
    "forbidden.test": "127.0.30.4",
    "redirect.test": "127.0.30.5",
    "pma.test": "127.0.30.10",
    "stubstatus.test": "127.0.120.3",  # nginx stub_status copied to Apache's /server-status (issue 11)
}
UNREACHABLE = ("down.test", "127.0.30.99")  # nothing listens there
FAKE_ENV = ("APP_NAME=Pledge\nAPP_ENV=production\nAPP_KEY=base64:c2VjcmV0c2VjcmV0\nDB_HOST=127.0.0.1\n"
            "DB_USERNAME=moodle\nDB_PASSWORD=hunter2hunter2\nMAIL_PASSWORD=correcthorse\n")
ADMINISH_PAGE = ("<!DOCTYPE html><html><head><title>phpMyAdmin</title></head><body><h1>phpMyAdmin</h1>"
                 "<p>Welcome. Our docs mention /.git/HEAD, ref: refs/heads/main and DB_PASSWORD=secret.</p>"
                 "<form><input name=\"pma_username\"><input name=\"pma_password\"></form>"
                 "<p>Index of /backup/ - Apache Server Status for this host - phpinfo()</p></body></html>")
SPA_PAGE = ("<!DOCTYPE html><html><head><title>Learning app</title><script src=\"/assets/app.js\"></script>"
            "</head><body><div id=\"root\">Loading phpMyAdmin-free single page app...</div></body></html>")


@dataclass
class ExposureBed:
    """Where the servers listen and how the scanner reaches them."""

    ca_file: Path
    resolve: dict[tuple[str, int], str] = field(default_factory=dict)
    workdir: Path | None = None

    def url(self, host: str) -> str:
        return f"https://{host}:{PORT}/"

    def resolve_args(self) -> list[str]:
        return [arg for (h, p), a in self.resolve.items() for arg in ("--resolve", f"{h}:{p}:{a}")]


def _require(ok: bool, what: str) -> None:
    require_tool(ok, what)


def make_certs(workdir: Path) -> tuple[Path, Path, Path]:
    """A private CA and one certificate for every test name: (ca, cert chain, key)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(*HOSTS, UNREACHABLE[0])
    ca_file, chain, key = workdir / "ca.pem", workdir / "cert.pem", workdir / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key))
    with chain.open("wb") as fh:
        for blob in cert.cert_chain_pems:
            fh.write(blob.bytes())
    return ca_file, chain, key


def _git(docroot: Path) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    for args in (["init", "-q", "-b", "main"], ["add", "index.html"], ["commit", "-q", "-m", "site"],
                 ["remote", "add", "origin", "https://deploy:ghp_fakeToken123@git.example.org/site.git"]):
        subprocess.run(["git", *args], cwd=docroot, env=env, check=True, capture_output=True)


def _site(root: Path) -> Path:
    docroot = root / "expose"
    (docroot / "backup").mkdir(parents=True)
    (docroot / "media" / "2024").mkdir(parents=True)
    (docroot / "index.html").write_text(
        "<!DOCTYPE html><html><head><title>School site</title>"
        "<link rel=\"stylesheet\" href=\"/css/site.css\">"
        "</head><body><h1>Welcome</h1><a href=\"/media/2024/report.pdf\">Annual report</a>"
        "<img src=\"https://expose.test:8443/media/logo.png\"><a href=\"https://elsewhere.example/x/\">x</a>"
        "</body></html>")
    (docroot / ".env").write_text(FAKE_ENV)
    (docroot / "backup" / "moodle-2024.sql").write_text("-- MySQL dump 10.13\nCREATE TABLE u (id int);\n")
    (docroot / "dump.sql").write_text("-- MySQL dump 10.13  Distrib 10.11\n\nCREATE TABLE t (id int);\n")
    (docroot / "media" / "2024" / "report.pdf").write_bytes(b"%PDF-1.4\n")
    (docroot / "media" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    _git(docroot)
    spa = root / "spa"
    (spa / "assets").mkdir(parents=True)
    (spa / "index.html").write_text(SPA_PAGE)
    (spa / "assets" / "app.js").write_text("console.log('app');\n")
    return docroot


def nginx_conf(root: Path, chain: Path, key: Path) -> str:
    tls = f"ssl_certificate {chain}; ssl_certificate_key {key};"
    a = HOSTS
    page = ADMINISH_PAGE.replace("'", "\\'")
    return f"""
server {{
    listen {a['expose.test']}:{PORT} ssl; server_name expose.test; {tls}
    root {root}/expose;
    location /backup/ {{ autoindex on; }}
    location /media/ {{ autoindex on; }}
}}
server {{
    listen {a['catchall.test']}:{PORT} ssl; server_name catchall.test; {tls}
    default_type text/html;
    location / {{ return 200 '{page}'; }}
}}
server {{
    listen {a['spa.test']}:{PORT} ssl; server_name spa.test; {tls}
    root {root}/spa;
    location / {{ try_files $uri /index.html; }}
}}
server {{
    listen {a['forbidden.test']}:{PORT} ssl; server_name forbidden.test; {tls}
    location / {{ return 403; }}
}}
server {{
    listen {a['redirect.test']}:{PORT} ssl; server_name redirect.test; {tls}
    default_type text/html;
    location = / {{ return 200 '<html><head><title>Home</title></head><body>Home page</body></html>'; }}
    location / {{ return 302 /; }}
}}
server {{
    listen {a['stubstatus.test']}:{PORT} ssl; server_name stubstatus.test; {tls}
    default_type text/html;
    location = / {{ return 200 '<html><head><title>Home</title></head><body>Home page</body></html>'; }}
    location = /server-status {{ stub_status; }}
}}
"""


def _once(config: pytest.Config, key: str, start: Callable[[], tuple[ExposureBed, Callable[[], None]]]
          ) -> ExposureBed:
    """Start a server once per test session even when several test modules import the fixture (each
    import makes its own session fixture); stopped when the session ends."""
    cache: dict[str, ExposureBed] = config.__dict__.setdefault("_pledgescan_exposure_beds", {})
    if key not in cache:
        bed, stop = start()
        config.add_cleanup(stop)
        cache[key] = bed
    return cache[key]


@pytest.fixture(scope="session")
def exposure_nginx(request: pytest.FixtureRequest) -> ExposureBed:
    """nginx with the planted exposures and the four traps."""
    return _once(request.config, "nginx", _start_nginx)


def _start_nginx() -> tuple[ExposureBed, Callable[[], None]]:
    if not nginx_available():
        _require(False, "nginx")
    _require(shutil.which("git") is not None, "git")
    root = Path(tempfile.mkdtemp(prefix="pledgescan-exposure-"))
    os.chmod(root, 0o755)  # nginx workers run unprivileged
    ca_file, chain, key = make_certs(root)
    _site(root)
    names = ("expose.test", "catchall.test", "spa.test", "forbidden.test", "redirect.test", "stubstatus.test")
    listen = [(HOSTS[n], PORT) for n in names]
    server = NginxServer(nginx_conf(root, chain, key), name="pledgescan-exposure", listen=listen,
                         workdir=root / "nginx")
    server.start()
    resolve = {(n, PORT): HOSTS[n] for n in names}
    resolve[(UNREACHABLE[0], PORT)] = UNREACHABLE[1]

    def stop() -> None:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    return ExposureBed(ca_file=ca_file, resolve=resolve, workdir=root), stop


# ---- Apache with phpMyAdmin, Adminer and server-status ---------------------------------------------

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
PMA_DIR = Path("/usr/share/phpmyadmin")
ADMINER = Path("/usr/share/adminer/adminer.php")


def apache_available() -> bool:
    return (Path(APACHE).exists() and (MODULES / "mod_ssl.so").exists() and PMA_DIR.exists()
            and ADMINER.exists() and any(MODULES.glob("libphp*.so")))


def apache_conf(root: Path, chain: Path, key: Path, addr: str) -> str:
    php = sorted(MODULES.glob("libphp*.so"))[-1]
    mods = ["mpm_prefork", "authz_core", "authz_host", "alias", "dir", "mime", "status", "ssl",
            "socache_shmcb", "env", "setenvif", "headers", "unixd", "log_config"]
    loads = "\n".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in mods
                      if (MODULES / f"mod_{m}.so").exists())
    user = "" if os.geteuid() != 0 else "User www-data\nGroup www-data\n"
    return f"""
ServerRoot {root}
{loads}
LoadModule php_module {php}
{user}PidFile {root}/apache.pid
ErrorLog {root}/error.log
LogFormat "%h %r %>s" short
CustomLog {root}/access.log short
Mutex file:{root}
DefaultRuntimeDir {root}
ServerName pma.test
Listen {addr}:{PORT}
TypesConfig /etc/mime.types
DirectoryIndex index.php index.html
StartServers 2
MinSpareServers 1
MaxSpareServers 3
MaxRequestWorkers 8
SSLSessionCache none
<FilesMatch "\\.php$">
    SetHandler application/x-httpd-php
</FilesMatch>
DocumentRoot {root}/www
<Directory />
    Require all denied
</Directory>
<Directory {root}/www>
    Require all granted
</Directory>
Alias /phpmyadmin {PMA_DIR}
<Directory {PMA_DIR}>
    Require all granted
    php_admin_value upload_tmp_dir {root}/tmp
    php_admin_value session.save_path {root}/tmp
</Directory>
Alias /adminer {root}/adminer
<Directory {root}/adminer>
    Require all granted
    php_admin_value session.save_path {root}/tmp
</Directory>
<Location /server-status>
    SetHandler server-status
    Require all granted
</Location>
<VirtualHost {addr}:{PORT}>
    ServerName pma.test
    SSLEngine on
    SSLCertificateFile {chain}
    SSLCertificateKeyFile {key}
</VirtualHost>
"""


class ApacheServer:
    def __init__(self, root: Path, conf: str, addr: str) -> None:
        self.root, self.conf, self.addr = root, conf, addr
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ApacheServer:
        path = self.root / "apache.conf"
        path.write_text(self.conf)
        env = {**os.environ, "APACHE_RUN_DIR": str(self.root), "APACHE_LOCK_DIR": str(self.root),
               "APACHE_LOG_DIR": str(self.root)}
        test = subprocess.run([APACHE, "-t", "-f", str(path)], capture_output=True, text=True, env=env)
        if test.returncode != 0:
            raise RuntimeError(f"apache config rejected:\n{test.stderr}")
        # Its own session: prefork Apache signals its whole process group when it stops, which
        # would otherwise terminate pytest (and make, and CI) along with it.
        self.proc = track(subprocess.Popen([APACHE, "-f", str(path), "-DFOREGROUND"], env=env,
                                           start_new_session=True,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            wait_port(self.addr, PORT)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
        self.proc = None


@pytest.fixture(scope="session")
def exposure_apache(request: pytest.FixtureRequest) -> ExposureBed:
    """Apache with mod_php serving Debian's phpMyAdmin and Adminer, and server-status."""
    _require(apache_available(), "apache2 with libapache2-mod-php, phpmyadmin and adminer")
    return _once(request.config, "apache", _start_apache)


def _start_apache() -> tuple[ExposureBed, Callable[[], None]]:
    root = Path(tempfile.mkdtemp(prefix="pledgescan-apache-"))
    ca_file, chain, key = make_certs(root)
    for d in ("www", "tmp", "pmaconf", "adminer"):
        (root / d).mkdir()
    (root / "www" / "index.html").write_text("<html><head><title>Staff</title></head><body>Hi</body></html>")
    shutil.copy(ADMINER, root / "adminer" / "index.php")
    os.chmod(root, 0o755)
    for d in ("tmp",):
        os.chmod(root / d, 0o1777)
    for f in (chain, key):
        os.chmod(f, 0o644)
    addr = HOSTS["pma.test"]
    server = ApacheServer(root, apache_conf(root, chain, key, addr), addr).start()

    def stop() -> None:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    return ExposureBed(ca_file=ca_file, resolve={("pma.test", PORT): addr}, workdir=root), stop
