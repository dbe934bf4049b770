"""What a user types and where the reports go: typos are errors (not an "all clear"), a scan that
assessed nothing exits 4, -o writes regular files only (or standard output with -o -), every output
location is checked before scanning, -v/-q after the command, Ctrl-C names --resume, piped output is
never cut, spreadsheets (xlsx read back with openpyxl, CSV for Excel, ';' members files)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from scanner.history.members import MembersError, parse_members
from scanner.progress import ScanProgress
from scanner.reporters import readable
from scanner.reporters.terminal import print_summary
from scanner.reporters.xlsx_report import MemberExtra, workbook
from tests.testbed.cli import PLEDGESCAN, pledgescan
from tests.testbed.reports import finding, make_report, make_target

UNREACHABLE = ["https://nowhere.pledgescan.test/", "--nameserver", "127.0.60.250:53", "--timeout", "1"]
SILENT_DNS = ("127.0.150.1", 5353)  # a UDP socket of this test that never answers


run = pledgescan


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pledgescan: error:"), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


# -- input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (("http//broken",), "'http//broken' is not a URL or host name (did you mean http://broken ?)"),
    (("https:/learn.example.org",), "did you mean https://learn.example.org ?"),
    ((":::",), "':::' is not a URL or host name"),
    (("example.org", "--only", "tls-protocol"), "--only tls-protocol: unknown check or control ID "
                                                "(did you mean tls-protocols?)"),
    (("example.org", "--skip", "t2"), "did you mean T2?"),
    (("example.org", "--only", "zzzz"), "`pledgescan checks` lists them"),
])
def test_typos_are_one_line_errors_exit_2(args, message):
    r = run("scan", *args, "--no-store")
    assert r.returncode == 2
    assert message in one_error_line(r)


def test_a_scan_that_assessed_nothing_exits_4_and_says_so(tmp_path: Path):
    r = run("scan", *UNREACHABLE, "--no-store", "--format", "json", "-o", str(tmp_path / "r.json"))
    assert r.returncode == 4, r.stderr
    assert "Nothing could be assessed" in r.stdout and "No failing controls" not in r.stdout
    assert r.stderr.strip().endswith("exit code 4")


def test_verbose_and_quiet_go_before_or_after_the_command():
    for args in (("scan", "-v"), ("scan", "-vv"), ("-v", "scan", "-v"), ("-q", "scan"), ("scan", "-q")):
        r = run(*args)
        assert r.returncode == 2 and "nothing to scan" in one_error_line(r), args


# -- output -------------------------------------------------------------------------------------------
def test_output_refuses_devices_fifos_and_outside_symlinks_before_scanning(tmp_path: Path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("keep me")
    inside = tmp_path / "reports"
    inside.mkdir()
    (inside / "link.json").symlink_to(outside / "secret.txt")
    for dest, message in (("/dev/null", "is a device"), (str(fifo), "is a FIFO"),
                          (str(inside / "link.json"), "a symbolic link to")):
        r = run("scan", "https://nowhere.pledgescan.test/", "--no-store", "--format", "json", "-o", dest)
        assert r.returncode == 2 and message in one_error_line(r), dest
    # and nothing was replaced: the device, the FIFO and the link's target are as they were
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert (outside / "secret.txt").read_text() == "keep me" and (inside / "link.json").is_symlink()


def test_a_symlink_to_a_file_beside_it_is_followed(tmp_path: Path):
    real = tmp_path / "report-2026.json"
    real.write_text("old")
    (tmp_path / "latest.json").symlink_to(real.name)
    r = run("scan", *UNREACHABLE, "--no-store", "--format", "json", "-o", str(tmp_path / "latest.json"), "-q")
    assert r.returncode == 4, r.stderr
    assert (tmp_path / "latest.json").is_symlink() and json.loads(real.read_text())["targets"]


def test_dash_writes_the_one_format_to_stdout(tmp_path: Path):
    r = run("scan", *UNREACHABLE, "--no-store", "--format", "json", "-o", "-", cwd=tmp_path)
    assert r.returncode == 4, r.stderr
    assert json.loads(r.stdout)["targets"][0]["grade"] == "?"  # the summary went to stderr
    assert "Scan summary" in r.stderr and not (tmp_path / "-").exists()
    r = run("scan", *UNREACHABLE, "--no-store", "--format", "json", "--format", "csv", "-o", "-")
    assert r.returncode == 2 and "one format" in one_error_line(r)


def test_portfolio_folder_is_checked_before_the_scan(tmp_path: Path):
    members = tmp_path / "m.yaml"
    members.write_text("members:\n  - name: Test School\n    endpoints: [https://nowhere.pledgescan.test/]\n")
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    for out, message in ((blocker / "portfolio", "is not a directory"), (Path("-"), "give -o DIR")):
        r = run("scan", "--members", str(members), "--store", store, "-o", str(out))
        assert r.returncode == 2 and message in one_error_line(r)
    # no run was started
    assert "0 run(s)" in run("history", "--store", store).stdout


def test_history_of_an_unknown_member_and_diff_of_a_first_run(tmp_path: Path):
    store = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    r = run("scan", *UNREACHABLE, "--store", store, "--format", "json", "-o", str(tmp_path / "r.json"), "-q")
    assert r.returncode == 4, r.stderr
    r = run("history", "--store", store, "--member", "nosuch")
    assert r.returncode == 2 and "--member nosuch: no run" in one_error_line(r)
    r = run("diff", "--store", store)
    assert r.returncode == 0 and "nothing to compare yet" in r.stderr and "error" not in r.stderr


def test_ctrl_c_names_the_command_that_finishes_the_run(tmp_path: Path):
    # Given a name server that never answers, so that the scan is still running when Ctrl-C comes
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dns:
        dns.bind(SILENT_DNS)
        store = f"sqlite:///{tmp_path / 'h.sqlite3'}"
        proc = subprocess.Popen([*PLEDGESCAN, "scan", "https://slow.pledgescan.test/", "--store", store,
                                 "--nameserver", f"{SILENT_DNS[0]}:{SILENT_DNS[1]}", "--timeout", "60", "-o",
                                 str(tmp_path / "r.html")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                # as from a terminal: a pytest started in the background (`&` from a
                                # script) ignores SIGINT, and a child would inherit that
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            dns.settimeout(60)
            dns.recvfrom(512)  # the scan is under way: its first DNS query arrived
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()  # our own child, by its pid
                proc.wait()
    assert proc.returncode == 130, err
    assert f"pledgescan scan --resume --store {store}" in err and "Traceback" not in err


# -- terminal -------------------------------------------------------------------------------------------
def test_piped_summary_is_never_cut(capsys):
    long_url = "https://" + "a-long-sub-domain." * 8 + "example.org/with/a/long/path/"
    title = "A finding title that is long enough to be cut at 120 columns " * 3
    report = make_report(make_target("endpoint", long_url, {
        "H2": [finding("http-hsts", "H2", "fail", title.strip(), severity="high")]}))
    print_summary(report)
    out = capsys.readouterr().out
    assert "Warns" in out and "Errors" in out
    assert any(long_url in ln and title.strip() in ln for ln in out.splitlines())


def test_progress_names_the_targets_in_work():
    p = ScanProgress(3, enabled=False)
    for name in ("https://a/", "https://b/", "https://c/"):
        p.start(type("T", (), {"target": name})())
    assert p.describe() == "https://a/, https://b/ +1 more"
    p.done(type("R", (), {"target": "https://a/"})())
    assert p.describe() == "https://b/, https://c/"


# -- spreadsheets and texts -------------------------------------------------------------------------------
def test_xlsx_reads_back_with_openpyxl():
    from openpyxl import load_workbook

    formula = '=HYPERLINK("http://evil.example","x")'
    report = make_report(
        make_target("endpoint", "https://a.example/", {
            "H4": [finding("http-framing", "H4", "fail", formula, severity="medium")],
            "H7": [finding("http-referrer-policy", "H7", "warn", "No Referrer-Policy")]},
            member="m1", member_name="Académie"),
        make_target("endpoint", "https://down.example/", {}, member="m2", member_name="Down",
                    default="error"))
    wb = load_workbook(io.BytesIO(workbook(report, {"m1": MemberExtra("rssi@a.example", "grade A -> B")})))
    assert wb.sheetnames == ["Members", "Targets", "Findings"]
    members = {r[0]: dict(zip([c.value for c in wb["Members"][1]], r, strict=True))
               for r in wb["Members"].iter_rows(min_row=2, values_only=True)}
    assert members["m1"]["name"] == "Académie" and members["m1"]["contact"] == "rssi@a.example"
    assert members["m1"]["since last run"] == "grade A -> B" and members["m1"]["grade"] == "B"
    assert members["m1"]["failing H (HTTPS enforcement and browser protections)"] == 1
    assert members["m2"]["score"] is None and members["m2"]["grade"] == "?"  # not assessed: empty
    findings = list(wb["Findings"].iter_rows(min_row=2, values_only=True))
    assert [(f[2], f[5]) for f in findings] == [("H4", "fail"), ("H7", "warn")]  # failing first
    assert findings[0][7] == formula  # server text stays text
    cell = wb["Findings"]["H2"]
    assert cell.data_type == "s"
    targets = {r[3]: r for r in wb["Targets"].iter_rows(min_row=2, values_only=True)}
    assert targets["https://down.example/"][5] is None


def test_members_csv_with_semicolons_and_a_helpful_error():
    inv = parse_members("member;contact;kind;target\r\nAcadémie;rssi@a.fr;endpoint;https://a.example/\r\n",
                        "m.csv", "csv")
    assert [m.name for m in inv.members] == ["Académie"] and inv.members[0].contact == "rssi@a.fr"
    with pytest.raises(MembersError) as exc:
        parse_members("name;url\nx;y\n", "m.csv", "csv")
    message = str(exc.value)
    assert "separator ';'" in message and "expected header: member,contact,kind,target" in message


def test_csv_opens_in_excel_as_utf8():
    from scanner.reporters.csv_report import CsvReporter

    text = CsvReporter().render(make_report(make_target("endpoint", "https://a.example/", {},
                                                        member="m1", member_name="Académie")))
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows[0]["member_name"] == "Académie"


def test_server_fixes_name_nginx_apache_and_iis_or_php():
    from scanner.plugins import load_checks

    server_side = {"tls-protocols", "tls-ciphers", "tls-cert-trust", "http-https-redirect", "http-hsts",
                   "http-framing", "http-nosniff", "http-referrer-policy", "http-permissions-policy",
                   "http-version-disclosure", "cookie-secure", "cookie-httponly", "cookie-samesite",
                   "cookie-prefixes", "http-cors", "http-mixed-content", "tls-handshake",
                   "tls-vulnerabilities"}
    metas = {c.id: c.meta for c in load_checks().checks}
    for cid in server_side:
        fix = metas[cid].remediation
        assert "nginx" in fix and "Apache" in fix and ("IIS" in fix or "PHP" in fix), cid
        assert ";;" not in fix and ";`;" not in fix, cid
    assert "PHP" in metas["http-csp"].remediation
    for cid in ("exposure-source-secrets", "exposure-admin-consoles", "exposure-diagnostics",
                "exposure-directory-listing"):
        fix = metas[cid].remediation
        assert "nginx" in fix and "Apache" in fix and "IIS" in fix, cid


def test_fixes_of_single_findings_name_nginx_apache_and_iis():
    """The fixes a check gives one finding (TLS 1.3 missing, small DH or EC groups, an incomplete chain)
    and every exposure with a server-side fix carry the nginx, Apache and IIS lines too."""
    from types import SimpleNamespace

    from checks.exposure import remediation
    from checks.tls import _TRUST_PROBLEMS, CURVES_FIX, DH_FIX, TLS13_FIX
    from scanner.exposure_catalogue import load_catalogue

    for fix in (TLS13_FIX, DH_FIX, CURVES_FIX, _TRUST_PROBLEMS["missing_intermediate"][1]):
        assert all(f"\n{server}:" in fix for server in ("nginx", "Apache", "IIS")), fix[:40]
        assert ";;" not in fix
    # fixed in the application, or listings that name their own server's directive
    own = {"phpinfo", "django-debug", "laravel-ignition", "symfony-profiler", "listing-python",
           "listing-apache", "listing-nginx", "listing-iis"}
    for family, entry in load_catalogue().entries():
        fix = remediation(SimpleNamespace(family=family, entry=entry))  # type: ignore[arg-type]
        assert fix.startswith(entry.remediation)
        if entry.id not in own:
            assert all(f"\n{server}:" in fix for server in ("nginx", "Apache", "IIS")), entry.id


def test_certificate_reprs_read_as_text():
    raw = ("validation failed: cert is not valid at validation time (encountered processing "
           "<Certificate(subject=<Name(O=Org,CN=expired.example)>, ...)>)")
    assert readable(raw) == ("validation failed: cert is not valid at validation time (encountered "
                             "processing certificate O=Org,CN=expired.example)")
