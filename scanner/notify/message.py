"""The e-mail of one member: multipart/alternative, plain text and HTML rendered from
``templates/message.txt`` and ``templates/message.html`` in the member's language. Worst first; what is
new, then reminders, fixes thanked for first; no link, no image, no external resource, no tracking."""

from __future__ import annotations

import email.policy
import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from scanner import i18n
from scanner.baseline import load_baseline
from scanner.notify.plan import MemberPlan
from scanner.reporters.html import code_spans
from scanner.reporters.output import write_atomic

TEMPLATE_PACKAGE = "templates"


def N_(text: str) -> str:  # noqa: N802 - gettext's conventional name: marks a text for extraction
    return text


SEVERITY_LABELS = {"critical": N_("CRITICAL"), "high": N_("HIGH"), "medium": N_("MEDIUM"), "low": N_("LOW"),
                   "info": N_("INFO")}


class AddressError(ValueError):
    """A sender or recipient that is not one e-mail address (one line)."""


def mailbox(text: str, what: str) -> Address:
    """``text`` as one e-mail address; ``AddressError`` for anything else (lists, newlines, no @)."""
    value = (text or "").strip()
    if not value or re.search(r"[\r\n,;<>\s]", value) or value.count("@") != 1:
        raise AddressError(f"{what} {text!r} is not one e-mail address")
    local, domain = value.split("@")
    if not local or not domain or "." not in domain.strip("."):
        raise AddressError(f"{what} {text!r} is not one e-mail address")
    try:
        return Address(addr_spec=value)
    except (ValueError, IndexError) as exc:
        raise AddressError(f"{what} {text!r} is not one e-mail address ({exc})") from None


def one_line(text: Any, limit: int = 200) -> str:
    s = re.sub(r"\s+", " ", str(text or "")).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


@cache
def environment(lang: str) -> Environment:
    """Templates of the messages in ``lang``: autoescape for HTML only, gettext from the catalogues."""
    env = Environment(loader=PackageLoader(TEMPLATE_PACKAGE, "."), undefined=StrictUndefined,
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True,
                      extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters["tr"] = lambda text: i18n.tr(text, lang)
    env.filters["code_spans"] = code_spans
    env.filters["date"] = lambda dt: format_date(dt, format="long", locale=lang)
    env.filters["one_line"] = one_line
    env.globals["SEVERITY_LABELS"] = SEVERITY_LABELS
    return env


def _fixed_view(plan: MemberPlan) -> list[dict[str, str]]:
    baseline = load_baseline()
    out = []
    for st in plan.fixed:
        target_key, _, control = st.item_key.rpartition("|")
        try:
            title = baseline.control(control).title
        except KeyError:
            title = ""
        out.append({"control": control, "title": title, "target": target_key.partition(":")[2]})
    return out


def context(plan: MemberPlan, lang: str, now: datetime) -> dict[str, Any]:
    return {"plan": plan, "member_name": one_line(plan.member.get("name") or plan.id), "lang": lang,
            "dir": i18n.direction(lang), "now": now, "measured": plan.run.started_at,
            "fixed": _fixed_view(plan)}


def subject(plan: MemberPlan, lang: str) -> str:
    n = len(plan.new)
    ngettext = i18n.ngettext_for(lang)
    text = ngettext(
        "Security of %(name)s: grade %(grade)s, %(num)d new problem",
        "Security of %(name)s: grade %(grade)s, %(num)d new problems", n)
    return "[pledgescan] " + text % {"name": one_line(plan.member.get("name") or plan.id, 80),
                                     "grade": plan.grade, "num": n}


def build_message(plan: MemberPlan, *, lang: str, sender: str, now: datetime) -> EmailMessage:
    """The multipart message to the member's contact (``AddressError`` when an address is unusable)."""
    lang = i18n.normalize(lang)
    frm = mailbox(sender, "--from")
    to = mailbox(str(plan.member.get("contact") or ""), f"member {plan.id}: contact")
    env = environment(lang)
    ctx = context(plan, lang, now)
    msg = EmailMessage()
    msg["From"] = frm
    msg["To"] = to
    msg["Subject"] = subject(plan, lang)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid("pledgescan", domain=frm.domain)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    msg.set_content(env.get_template("message.txt").render(**ctx), subtype="plain", charset="utf-8")
    msg.add_alternative(env.get_template("message.html").render(**ctx), subtype="html", charset="utf-8")
    msg["Content-Language"] = lang  # after the parts: set_content moves Content-* headers into them
    return msg


def write_eml(path: Path, msg: EmailMessage) -> Path:
    """The message as an ``.eml`` file (RFC 5322, CRLF line ends), written atomically like the reports."""
    return write_atomic(path, msg.as_bytes(policy=email.policy.SMTP))
