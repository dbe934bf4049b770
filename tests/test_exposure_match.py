"""Unit tests of the exposure matcher, the soft-404 logic and secret masking, over recorded answers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from checks.exposure import CHECKS
from checks.lib.exposure_match import analyse, match_entry, secret_summary
from scanner.evidence import Snapshot
from scanner.evidence.exposure import ExposureEvidence, Probe, mask_secrets, similar, sniff
from scanner.exposure_catalogue.model import load_catalogue, parse_family
from scanner.models import Status, Target

ORIGIN = "https://site.test"
NOT_FOUND = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>"
ADMINISH = (b"<html><head><title>phpMyAdmin</title></head><body>Welcome to phpMyAdmin. "
            b"See /.git/HEAD and set DB_PASSWORD=hunter2 in .env. pma_username "
            b"<input name='pma_username'></body></html>")
ENV_FILE = b"APP_ENV=production\nAPP_KEY=base64:Zm9vYmFyYmF6\nDB_PASSWORD=hunter2\nexport AWS_SECRET=abc\n"


def rec(path: str, status: int = 200, body: bytes = b"", *, purpose: str = "probe", method: str = "GET",
        headers: tuple[tuple[str, str], ...] = (), confirms: str | None = None) -> Probe:
    return Probe.record(purpose=purpose, path=path, url=ORIGIN + path, method=method,  # type: ignore[arg-type]
                        status=status, headers=headers, body=body, confirms=confirms)


def calib(status: int = 404, body: bytes = NOT_FOUND, headers: tuple[tuple[str, str], ...] = ()) -> tuple:
    paths = ("/x7f3kq9w", "/x7f3kq9w.php", "/x7f3kq9w.html", "/.x7f3kq9w", "/x7f3kq9w/", "/x7f3kq9w/a8c.txt")
    return tuple(rec(p, status, body, purpose="calibration", headers=headers) for p in paths)


def evidence(*probes: Probe, calibration: tuple = (), landing: Probe | None = None,
             confirmations: tuple = ()) -> ExposureEvidence:
    return ExposureEvidence(origin=ORIGIN, budget=150, requests=len(probes) + len(calibration),
                            calibration=calibration or calib(), probes=probes, landing=landing,
                            confirmations=confirmations)


def snapshot(ev: ExposureEvidence | None) -> Snapshot:
    target = Target(kind="endpoint", target=ORIGIN + "/", host="site.test", port=443)
    return Snapshot(target=target, exposure=ev)


def run_checks(ev: ExposureEvidence | None) -> list:
    snap = snapshot(ev)
    return [f for chk in CHECKS for f in chk.run(snap)]


# ---- masking ------------------------------------------------------------------------------------------

def test_env_values_are_masked_to_first_character():
    masked = mask_secrets(ENV_FILE.decode())
    assert "hunter2" not in masked and "Zm9vYmFy" not in masked and "abc" not in masked
    assert "DB_PASSWORD=h*****" in masked
    assert "export AWS_SECRET=a*****" in masked


def test_php_defines_and_url_passwords_are_masked():
    text = "<?php\ndefine('DB_PASSWORD', 'sup3r');\n$db_pass = \"s3cret\";\n" \
           "\turl = https://bob:ghp_token@github.com/org/repo.git\n"
    masked = mask_secrets(text)
    assert "sup3r" not in masked and "s3cret" not in masked and "ghp_token" not in masked
    assert "https://bob:*****@github.com/org/repo.git" in masked
    assert set(secret_summary(text)) >= {"DB_PASSWORD=s*****", "db_pass=s*****"}


def test_private_keys_are_masked():
    text = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n"
    assert "MIIEow" not in mask_secrets(text)


def test_recorded_probe_never_stores_the_secret():
    p = rec("/.env", body=ENV_FILE, headers=(("content-type", "text/plain"),))
    assert "hunter2" not in p.model_dump_json()
    assert "DB_PASSWORD=h*****" in p.excerpt


# ---- fingerprints ---------------------------------------------------------------------------------

def test_sniff_magic_bytes():
    assert sniff(b"PK\x03\x04rest") == "zip"
    assert sniff(b"\x1f\x8b\x08\x00") == "gzip"
    assert sniff(b"-- MySQL dump 10.13\n") == "sql"
    assert sniff(b"\n\nCREATE TABLE users (id int);") == "sql"
    assert sniff(b"\x00\x00\x00\x01Bud1\x00") == "ds_store"
    assert sniff(b"<!DOCTYPE html><html>") == "html"
    assert sniff(b"") == "empty"


def test_pages_echoing_the_path_are_similar():
    a = rec("/.git/HEAD", 404, b"<html><title>Oops</title><p>The page /.git/HEAD was not found "
            b"(request id 8f3a9c1d22e4).</p></html>")
    b = rec("/x7f3kq9w", 404, b"<html><title>Oops</title><p>The page /x7f3kq9w was not found "
            b"(request id 0bb21f9e7d6c).</p></html>")
    assert similar(a, b)
    assert not similar(a, rec("/x", 404, NOT_FOUND))


# ---- matcher ----------------------------------------------------------------------------------------

def test_git_head_needs_status_and_content():
    cat = load_catalogue()
    _, entry = cat.entry("git-head")  # type: ignore[misc]
    ok = rec("/.git/HEAD", body=b"ref: refs/heads/main\n", headers=(("content-type", "text/plain"),))
    got = match_entry(entry, ok)
    assert got is not None and got[0][0] == "status 200"
    # The same words inside an HTML page are not a HEAD file.
    assert match_entry(entry, rec("/.git/HEAD", body=b"<html>ref: refs/heads/main</html>")) is None
    # Wrong status.
    assert match_entry(entry, rec("/.git/HEAD", 403, b"ref: refs/heads/main\n")) is None


def test_real_exposures_are_found_with_evidence():
    ev = evidence(
        rec("/.git/HEAD", body=b"ref: refs/heads/main\n", headers=(("content-type", "text/plain"),)),
        rec("/.env", body=ENV_FILE, headers=(("content-type", "text/plain"),)),
        rec("/backup.sql", 206, b"-- MySQL dump 10.13\nCREATE TABLE t (a int);", method="RANGE",
            headers=(("content-type", "application/octet-stream"),)),
        rec("/backup/", body=b"<html><head><title>Index of /backup/</title></head><body><h1>Index of "
            b"/backup/</h1><hr><pre><a href=\"../\">../</a>\n<a href=\"db.sql\">db.sql</a></pre>"
            b"</body></html>"),
        rec("/server-status", body=b"<html><head><title>Apache Status</title></head><body><h1>Apache Server "
            b"Status for pma.test</h1><dl><dt>Server Version: Apache/2.4.62 (Debian)</dt>"
            b"<dt>Server uptime: 2 minutes</dt></dl></body></html>"),
    )
    findings = run_checks(ev)
    bad = {(f.control, f.evidence.get("path")) for f in findings if f.status == Status.FAIL}
    assert bad == {("E1", "/.git/HEAD"), ("E1", "/.env"), ("E1", "/backup.sql"), ("E4", "/backup/"),
                   ("E3", "/server-status")}
    env = next(f for f in findings if f.evidence.get("path") == "/.env")
    assert "DB_PASSWORD=h*****" in env.evidence["secrets"]
    assert "hunter2" not in str(env.model_dump())
    status = next(f for f in findings if f.control == "E3")
    assert status.evidence["version"] == "2.4.62" and status.remediation
    assert next(f for f in findings if f.control == "E2").status == Status.PASS


def test_nginx_stub_status_is_found_at_the_apache_status_path():
    # issue 11: status signatures are matched at every status path of the family
    body = (b"Active connections: 1 \nserver accepts handled requests\n 7 7 7 \n"
            b"Reading: 0 Writing: 1 Waiting: 0 \n")
    hits = analyse(evidence(rec("/server-status", body=body, headers=(("content-type", "text/plain"),))))
    assert [(h.entry.id, h.probe.path) for h in hits] == [("nginx-stub-status", "/server-status")]


def test_lms_login_is_a_warning():
    page = (b"<html><head><title>Log in to the site</title></head><body><script>M.cfg = {\"wwwroot\":"
            b"\"https://x\"};</script><form id=\"login\"><input name=\"logintoken\"></form></body></html>")
    ev = evidence(rec("/login/index.php", body=page, headers=(("set-cookie", "MoodleSession=abc; path=/"),)))
    e2 = [f for f in run_checks(ev) if f.control == "E2"]
    assert [f.status for f in e2] == [Status.WARN]
    assert e2[0].evidence["product"] == "Moodle" and "MFA" in e2[0].remediation


def test_archive_needs_magic_bytes_not_just_a_content_type():
    html_as_zip = rec("/backup.zip", 200, b"<html><body>Download our backup.zip</body></html>",
                      method="RANGE", headers=(("content-type", "application/zip"),))
    zip_file = rec("/site.zip", 206, b"PK\x03\x04" + b"\x00" * 60, method="RANGE",
                   headers=(("content-type", "application/zip"),))
    hits = analyse(evidence(html_as_zip, zip_file))
    assert [(h.entry.id, h.probe.path) for h in hits] == [("archive", "/site.zip")]


def test_directory_answering_everything_alike_is_not_a_finding():
    head = b"ref: refs/heads/main\n"
    ev = evidence(rec("/.git/HEAD", body=head, headers=(("content-type", "text/plain"),)),
                  confirmations=(rec("/.git/q8z1m", body=head, purpose="confirm", confirms="/.git/HEAD",
                                     headers=(("content-type", "text/plain"),)),))
    assert analyse(ev) == []


def test_django_debug_404_is_found_from_calibration():
    page = (b"<html><head><title>Page not found at /x7f3kq9w</title></head><body>Using the URLconf "
            b"defined in <code>mysite.urls</code>, Django tried these URL patterns."
            b" You're seeing this error because "
            b"you have <code>DEBUG = True</code> in your Django settings file.</body></html>")
    findings = run_checks(evidence(calibration=calib(404, page)))
    e3 = [f for f in findings if f.control == "E3"]
    assert [f.status for f in e3] == [Status.FAIL]
    assert e3[0].evidence["product"].startswith("Django")


# ---- traps: the host's answer to random paths --------------------------------------------------------

ALL_PATHS = ["/.git/HEAD", "/.git/config", "/.env", "/phpmyadmin/", "/adminer.php", "/server-status",
             "/backup/", "/phpinfo.php", "/wp-login.php", "/login"]


def _trap(status: int, body: bytes, headers: tuple = ()) -> ExposureEvidence:
    probes = [rec(p, status, body, headers=headers) for p in ALL_PATHS]
    probes += [rec("/backup.zip", status, body, method="RANGE", headers=headers)]
    return evidence(*probes, calibration=calib(status, body, headers), landing=rec("/", status, body,
                                                                                   purpose="landing"))


@pytest.mark.parametrize("ev", [
    _trap(200, ADMINISH, (("content-type", "text/html"),)),  # catch-all admin-looking page
    _trap(200, ENV_FILE, (("content-type", "text/plain"),)),  # catch-all that looks like a .env
    _trap(403, b"<html><title>403 Forbidden</title><h1>Forbidden</h1></html>"),
    _trap(302, b"", (("location", "https://site.test/"),)),
], ids=["catch-all-admin", "catch-all-env", "403-everything", "redirect-home"])
def test_traps_give_no_findings(ev):
    findings = run_checks(ev)
    assert {f.status for f in findings} == {Status.PASS}
    assert len(findings) == 4


def test_redirect_to_login_with_the_path_in_the_query_is_soft():
    def redirect(path: str, purpose: str = "probe") -> Probe:
        return rec(path, 302, b"", purpose=purpose,
                   headers=(("location", f"https://site.test/login?next={path}"),))
    cal = tuple(redirect(p, "calibration") for p in ("/a1b2c3d4", "/a1b2c3d4.php"))
    ev = evidence(redirect("/cpanel"), calibration=cal)
    assert analyse(ev) == []


# ---- errors -------------------------------------------------------------------------------------

def test_errors_are_errors_never_fails():
    findings = run_checks(ExposureEvidence(error="host unreachable: connection refused"))
    assert {f.status for f in findings} == {Status.ERROR} and len(findings) == 4
    assert {f.status for f in run_checks(None)} == {Status.ERROR}


def test_catalogue_refuses_a_single_signal_entry():
    text = """
family: diagnostics
control: E3
entries:
  - id: weak
    product: X
    paths: [/x]
    signals: [{title: "x"}]
    min_signals: 3
    remediation: remove it please
"""
    with pytest.raises(ValidationError):
        parse_family(text)
    with pytest.raises(ValidationError):
        parse_family(text.replace("min_signals: 3", "min_signals: 1"))


def test_catalogue_loads_and_covers_the_issue():
    cat = load_catalogue()
    products = " ".join(e.product for _, e in cat.entries())
    for word in ("Git", "Subversion", "Mercurial", ".env", "dump", ".DS_Store", "phpMyAdmin", "Adminer",
                 "Tomcat", "Jenkins", "Grafana", "Kibana", "Prometheus", "Webmin", "cPanel", "Plesk",
                 "server-status", "server-info", "stub_status", "phpinfo", "Actuator", "Django", "Laravel",
                 "Symfony", "Elasticsearch", "Moodle", "Canvas", "Open edX", "Chamilo", "WordPress", "Drupal",
                 "Joomla", "IIS", "Python http.server", "nginx directory", "Apache directory"):
        assert word in products, word


# ---- collector helpers (pure) -------------------------------------------------------------------------

def test_sibling_paths_keep_the_shape():
    from scanner.collectors.exposure import _sibling

    sib, key = _sibling("/.git/HEAD")
    assert sib.startswith("/.git/ps") and key == "/.git/|"
    sib, key = _sibling("/backup.sql")
    assert sib.endswith(".sql") and key == "/|.sql"
    sib, key = _sibling("/phpmyadmin/")
    assert sib.endswith("/") and sib.count("/") == 2 and key == "/|dir"
    assert _sibling("/.env")[1] == "/|hidden"


def test_linked_directories_are_same_origin_only():
    from scanner.collectors.exposure import _linked_directories

    html = ('<a href="/media/2024/r.pdf">r</a><img src="https://site.test/img/logo.png">'
            '<script src="https://cdn.example/js/x.js"></script><a href="docs/a.html">d</a>'
            '<a href="http://site.test/plain/">p</a><a href="/backup/">known</a>')
    got = _linked_directories(html, "https://site.test/", "https://site.test", 8, {"/backup/"})
    assert got == ["/media/", "/media/2024/", "/img/", "/docs/"]
