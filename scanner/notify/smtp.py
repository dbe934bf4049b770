"""Delivery through an SMTP server: ``smtp://HOST[:PORT]`` (STARTTLS whenever the server offers it) or
``smtps://HOST[:PORT]`` (TLS from the start). Credentials come from the environment only
(``PLEDGESCAN_SMTP_USER``, ``PLEDGESCAN_SMTP_PASSWORD``) and are never sent over a connection without TLS.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

USER_ENV = "PLEDGESCAN_SMTP_USER"
PASSWORD_ENV = "PLEDGESCAN_SMTP_PASSWORD"  # noqa: S105 - the variable's name, not a secret
TIMEOUT_S = 30.0


class SmtpError(Exception):
    """Delivery failed or the settings are unusable (one line)."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    implicit_tls: bool = False
    user: str | None = None
    password: str | None = None
    ca_bundle: Path | None = None
    timeout: float = TIMEOUT_S


def parse_smtp_url(url: str, ca_bundle: Path | None = None,
                   env: dict[str, str] | None = None) -> SmtpSettings:
    """``smtp://HOST:PORT`` -> settings, with credentials from the environment; a URL that carries a user
    or password is refused (they would show in the process list and the shell history)."""
    env = dict(os.environ) if env is None else env
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise SmtpError(f"--smtp {url!r}: expected smtp://HOST[:PORT] or smtps://HOST[:PORT]")
    if parts.username or parts.password:
        raise SmtpError(f"--smtp: no credentials in the URL; set {USER_ENV} and {PASSWORD_ENV} instead")
    try:
        port = parts.port
    except ValueError:
        raise SmtpError(f"--smtp {url!r}: bad port") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise SmtpError(f"--smtp {url!r}: expected smtp://HOST[:PORT] or smtps://HOST[:PORT]")
    implicit = parts.scheme == "smtps"
    user, password = env.get(USER_ENV) or None, env.get(PASSWORD_ENV) or None
    if bool(user) != bool(password):
        raise SmtpError(f"set both {USER_ENV} and {PASSWORD_ENV}, or neither")
    return SmtpSettings(host=parts.hostname, port=port or (465 if implicit else 25), implicit_tls=implicit,
                        user=user, password=password, ca_bundle=ca_bundle)


class Mailer:
    """One SMTP session for a batch of messages (a context manager)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.tls = False
        self._smtp: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.settings.ca_bundle:
            ctx.load_verify_locations(cafile=str(self.settings.ca_bundle))
        return ctx

    def __enter__(self) -> Mailer:
        s = self.settings
        where = f"{s.host}:{s.port}"
        try:
            if s.implicit_tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                                      context=self._context())
                self.tls = True
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            self._smtp = smtp
            smtp.ehlo()
            if not self.tls and smtp.has_extn("starttls"):
                smtp.starttls(context=self._context())
                smtp.ehlo()
                self.tls = True
            if s.user:
                if not self.tls:
                    raise SmtpError(f"the SMTP server {where} offers no STARTTLS: credentials are not sent "
                                    "without TLS")
                smtp.login(s.user, s.password or "")
        except SmtpError:
            self.close()
            raise
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            self.close()
            raise SmtpError(f"SMTP server {where}: {_reason(exc)}") from None
        return self

    def send(self, msg: EmailMessage) -> None:
        """Deliver one message; ``SmtpError`` (one line) when the server refuses it."""
        if self._smtp is None:
            raise SmtpError("not connected")
        try:
            refused = self._smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise SmtpError(f"{msg['To']}: {_reason(exc)}") from None
        if refused:
            raise SmtpError(f"{msg['To']}: refused by the server: {refused}")

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
            self._smtp = None

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        err = exc.smtp_error
        text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
        return f"{exc.smtp_code} {' '.join(text.split())[:200]}"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
