"""Messages rendered in each language for a member with new, fixed and old problems: both parts, the
member's language, worst first, thanks first, technical tokens untouched, no link or external resource."""

from __future__ import annotations

import html
import re
from email import message_from_bytes, policy

import pytest

from scanner import i18n
from scanner.history.store import Store
from scanner.notify.message import AddressError, build_message, mailbox
from scanner.notify.plan import check_texts, plan_member
from scanner.notify.sent import SentLog
from tests.notify_helpers import day, members, record_run

SENDER = "secretariat@coalition.example"


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory):
    """Day 0: T4, H2, H10 reported. Day 70: H2 fixed, C1 new, T4 due again, H10 not due yet."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('notify') / 'h.sqlite3'}")
    log = SentLog(store)
    run0 = record_run(store, day(0), {"T4": "fail", "H2": "fail", "H10": "fail"})
    first = plan_member(store, log, store.run(run0), members()[0], day(0))
    log.record("lycee", first.records(), sent_at=day(0), run_id=run0, recipient="x", message_id="<1@x>")
    run1 = record_run(store, day(70), {"T4": "fail", "H10": "fail", "C1": "fail"})
    p = plan_member(store, log, store.run(run1), members()[0], day(70))
    assert [i.control for i in p.new] == ["C1"] and [i.control for i in p.due] == ["T4"]
    assert [i.control for i in p.waiting] == ["H10"] and len(p.fixed) == 1
    yield p
    store.close()


def parts(msg) -> tuple[str, str]:  # noqa: ANN001
    parsed = message_from_bytes(msg.as_bytes(policy=policy.SMTP), policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",)).get_content()
    body = parsed.get_body(("html",)).get_content()
    return text, body


SUBJECTS = {"en": "grade F, 1 new problem", "fr": "note F, 1 nouveau problème",
            "es": "calificación F, 1 problema nuevo", "ar": "مشكلة جديدة واحدة"}


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_message_in_each_language(plan, lang: str) -> None:
    msg = build_message(plan, lang=lang, sender=SENDER, now=day(70))
    assert msg["To"] == "rssi@lycee.example" and msg["From"] == SENDER
    assert SUBJECTS[lang] in msg["Subject"] and "Lycée Ouvert" in msg["Subject"]
    assert msg["Content-Language"] == lang and msg["Auto-Submitted"] == "auto-generated"
    text, body = parts(msg)
    shown = html.unescape(re.sub(r"<[^>]+>", "", body))
    _ = i18n.gettext_for(lang)
    for part in (text, shown):
        thanks, new, reminder = (part.index(_(h)) for h in ("Thank you: fixed since our last message",
                                                            "New problems, worst first",
                                                            "Still open: a reminder"))
        assert thanks < new < reminder  # thanks first, then what is new, then reminders
        assert i18n.tr("HSTS", lang) in part  # the fixed control
        assert i18n.tr("Cookies carry Secure", lang) in part  # new problem, control title translated
        assert "Cookie MoodleSession lacks Secure" in part  # the finding's own words, as observed
        open_for = i18n.ngettext_for(lang)("Open for %(num)d day (first seen on %(date)s).",
                                           "Open for %(num)d days (first seen on %(date)s).", 70)
        assert open_for.split("%")[0] in part
        assert _("First seen on %(date)s.").split("%")[0] in part  # the new problem, seen today
        assert "session.cookie_secure = 1" in part  # technical tokens untouched
        assert ("1 " if lang != "ar" else "") in part
    assert "<code dir=\"ltr\">session.cookie_secure = 1</code>" in body
    if lang in i18n.COMPLETE:  # explanation and fix in the member's language
        for part in (text, shown):
            assert i18n.tr(check_texts()["cookie-secure"].risk, lang) in part
            fix = i18n.tr(check_texts()["tls-cert-trust"].remediation, lang).splitlines()
            assert fix[0] in part and fix[1].split("`")[0] in part  # one line per server
    assert f'<html lang="{lang}" dir="{i18n.direction(lang)}">' in body
    # no link, no image, no external resource, no tracking
    assert not re.search(r"<a\b|<img\b|<link\b|\bsrc=|\bhref=|url\(|@import", body, re.I)


def test_french_message_reads_french(plan) -> None:
    text, _ = parts(build_message(plan, lang="fr", sender=SENDER, now=day(70)))
    assert "Bonjour," in text and "Merci : corrigé depuis notre dernier message" in text
    assert "[CRITIQUE] T4 Certificat reconnu" in text
    assert "Ouvert depuis 70 jours (constaté pour la première fois le 1 mars 2027)." in text
    assert "Constaté pour la première fois le 10 mai 2027." in text
    assert "1 autre problème signalé précédemment est toujours ouvert" in text


def test_arabic_message_is_right_to_left(plan) -> None:
    _, body = parts(build_message(plan, lang="ar", sender=SENDER, now=day(70)))
    assert 'dir="rtl"' in body and "مرحبًا،" in body and "padding-inline-start" in body
    risk = check_texts()["cookie-secure"].risk
    assert i18n.tr(risk, "ar") != risk and i18n.tr(risk, "ar") in html.unescape(body)  # explanation in Arabic


def test_hostile_member_fields_are_escaped_and_cannot_add_headers(plan) -> None:
    evil = {**plan.member, "name": "Evil <script>alert(1)</script>\r\nBcc: all@victims.example"}
    p = type(plan)(**{**plan.__dict__, "member": evil})
    msg = build_message(p, lang="en", sender=SENDER, now=day(70))
    assert "Bcc" not in msg and "\n" not in msg["Subject"]
    _, body = parts(msg)
    assert "<script>" not in body and "&lt;script&gt;" in body


@pytest.mark.parametrize("bad", ["", "two@a.example,three@b.example", "no-at-sign", "x@y\r\nBcc: z@w.example",
                                 "https://lycee.example/contact"])
def test_unusable_addresses_are_one_line_errors(bad: str) -> None:
    with pytest.raises(AddressError, match="is not one e-mail address"):
        mailbox(bad, "contact")
