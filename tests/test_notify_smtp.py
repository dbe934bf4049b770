"""``pledgescan notify --send`` through a real local SMTP server (aiosmtpd, started by the fixtures on
127.0.160.0/24): headers, both parts, the record of what was sent, no repeat on the next run, STARTTLS
with credentials from the environment, and one-line refusals."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from scanner.cli.main import main
from scanner.history.store import Store
from scanner.notify.sent import SentLog
from tests.notify_helpers import MEMBERS_YAML, record_run

SMTP_ADDR = "127.0.160.1"
SENDER = "secretariat@coalition.example"
USER, PASSWORD = "secretariat", "s3cret-for-tests"


class Inbox:
    """aiosmtpd handler: keeps every message with how its session looked."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802 - aiosmtpd's hook
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "data": bytes(envelope.original_content or envelope.content),
                              "tls": session.ssl is not None, "authenticated": session.authenticated})
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((SMTP_ADDR, 0))
        return s.getsockname()[1]


def authenticate(server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN201
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture
def plain_smtp():
    inbox = Inbox()
    ctl = Controller(inbox, hostname=SMTP_ADDR, port=free_port())
    ctl.start()
    yield inbox, f"smtp://{SMTP_ADDR}:{ctl.port}"
    ctl.stop()


@pytest.fixture
def starttls_smtp(tmp_path: Path):
    """STARTTLS required, AUTH only after TLS, certificate from a private CA for the address."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(SMTP_ADDR).configure_cert(server_ctx)
    ca_file = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    inbox = Inbox()
    ctl = Controller(inbox, hostname=SMTP_ADDR, port=free_port(), tls_context=server_ctx,
                     require_starttls=True, authenticator=authenticate, auth_require_tls=True)
    ctl.start()
    yield inbox, f"smtp://{SMTP_ADDR}:{ctl.port}", ca_file
    ctl.stop()


@pytest.fixture
def setup(tmp_path: Path):
    """A store with one run (lycee: two failing controls; quiet: opted out) and the members file."""
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    store = Store(url)
    record_run(store, datetime.now(UTC) - timedelta(days=3), {"T4": "fail", "H2": "fail"})
    store.close()
    members = tmp_path / "members.yaml"
    members.write_text(MEMBERS_YAML, "utf-8")
    return url, members, tmp_path / "out"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def notify(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run ``pledgescan notify`` through the console entry point, in this process (the SMTP servers run
    in threads of it), with ``env`` added to the environment."""

    def run(url: str, members: Path, out: Path, *args: str, env: dict[str, str] | None = None) -> Result:
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        try:
            main(["notify", "--members", str(members), "--store", url, "-o", str(out), "--from", SENDER,
                  *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            for k in env or {}:
                monkeypatch.delenv(k)
        got = capsys.readouterr()
        return Result(code, got.out, got.err)

    return run


def test_send_through_a_real_smtp_server_records_and_does_not_repeat(plain_smtp, setup, notify) -> None:
    inbox, smtp = plain_smtp
    url, members, out = setup
    r = notify(url, members, out, "--send", "--smtp", smtp)
    assert r.returncode == 0, r.stderr
    assert "quiet: no message: opted out (notify: false)" in r.stderr
    [got] = inbox.messages
    assert got["from"] == SENDER and got["to"] == ["rssi@lycee.example"]
    msg = message_from_bytes(got["data"], policy=policy.default)
    assert msg["To"] == "rssi@lycee.example" and msg["From"] == SENDER
    assert msg["Subject"] == "[pledgescan] Sécurité de Lycée Ouvert : note F, 2 nouveaux problèmes"
    assert msg["Content-Language"] == "fr" and msg["Message-ID"]
    text = msg.get_body(("plain",)).get_content()
    body = msg.get_body(("html",)).get_content()
    assert "Nouveaux problèmes, les plus graves d'abord" in text and text.index("T4") < text.index("H2")
    assert '<html lang="fr" dir="ltr">' in body
    eml = message_from_bytes((out / "lycee.eml").read_bytes(), policy=policy.default)
    assert eml["Message-ID"] == msg["Message-ID"]  # the file is the message that was sent
    store = Store(url)
    sent = SentLog(store).history("lycee")
    store.close()
    assert sorted(key.rpartition("|")[2] for _, key, state in sent if state == "open") == ["H2", "T4"]
    # the next run of notify has nothing new and nothing due: no message, nothing sent
    r = notify(url, members, out, "--send", "--smtp", smtp)
    assert r.returncode == 0, r.stderr
    assert "lycee: no message: nothing new and nothing due (2 open, not due yet)" in r.stderr
    assert len(inbox.messages) == 1


def test_starttls_and_credentials_from_the_environment(starttls_smtp, setup, notify) -> None:
    inbox, smtp, ca_file = starttls_smtp
    url, members, out = setup
    r = notify(url, members, out, "--send", "--smtp", smtp, "--smtp-ca-bundle", str(ca_file),
               env={"PLEDGESCAN_SMTP_USER": USER, "PLEDGESCAN_SMTP_PASSWORD": PASSWORD})
    assert r.returncode == 0, r.stderr
    assert "1 message(s) sent through 127.0.160.1" in r.stderr and "(TLS)" in r.stderr
    [got] = inbox.messages
    assert got["tls"] and got["authenticated"]


def test_wrong_credentials_are_one_line_and_nothing_is_recorded(starttls_smtp, setup, notify) -> None:
    _, smtp, ca_file = starttls_smtp
    url, members, out = setup
    r = notify(url, members, out, "--send", "--smtp", smtp, "--smtp-ca-bundle", str(ca_file),
               env={"PLEDGESCAN_SMTP_USER": USER, "PLEDGESCAN_SMTP_PASSWORD": "wrong"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("pledgescan: error: SMTP server 127.0.160.1:") and " 535 " in last
    store = Store(url)
    assert SentLog(store).history("lycee") == []
    store.close()


def test_credentials_are_never_sent_without_tls(plain_smtp, setup, notify) -> None:
    inbox, smtp = plain_smtp
    url, members, out = setup
    r = notify(url, members, out, "--send", "--smtp", smtp,
               env={"PLEDGESCAN_SMTP_USER": USER, "PLEDGESCAN_SMTP_PASSWORD": PASSWORD})
    assert r.returncode == 1 and "offers no STARTTLS: credentials are not sent without TLS" in r.stderr
    assert inbox.messages == []


@pytest.mark.parametrize(("args", "message"), [
    (["--send", "--smtp", "smtp://user:pw@127.0.160.1:25"], "no credentials in the URL"),
    (["--send"], "--send needs --smtp"),
    (["--send", "--smtp", "http://127.0.160.1/"], "expected smtp://HOST[:PORT]"),
    (["--lang", "xx"], "unknown language 'xx'"),
    (["--remind", "high=soon"], "expected SEVERITY=DAYS"),
])
def test_bad_options_are_one_line_usage_errors(setup, args: list[str], message: str, notify) -> None:
    url, members, out = setup
    r = notify(url, members, out, *args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_dry_run_writes_sends_and_records_nothing(setup, notify) -> None:
    url, members, out = setup
    r = notify(url, members, out, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "lycee: would write to rssi@lycee.example in fr: 2 new, 0 reminder(s), 0 fixed" in r.stdout
    assert not out.exists()
    store = Store(url)
    assert SentLog(store).history("lycee") == []
    store.close()


def test_without_send_the_eml_is_written_and_record_marks_it_sent(setup, notify) -> None:
    url, members, out = setup
    r = notify(url, members, out, "--lang", "es")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["lycee.eml"]  # fr from its own language: field
    r = notify(url, members, out, "--record")
    assert "1 message(s) recorded as sent" in r.stderr
    r = notify(url, members, out, "--record")
    assert "nothing new and nothing due" in r.stderr
