"""Stored runs with chosen dates and failing controls, for the notify tests (no scan needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from scanner.history.members import parse_members
from scanner.history.store import RunRow, Store
from scanner.models import Target
from tests.testbed.reports import finding, make_target

DAY0 = datetime(2027, 3, 1, 6, 0, tzinfo=UTC)
ENDPOINT = "https://lycee.example/"
FAILS = {  # control -> the failing finding, as the checks word them (metadata remediation = default)
    "T4": ("tls-cert-trust", "Certificate has expired", None),
    "H2": ("http-hsts", "Strict-Transport-Security header missing", None),
    "H10": ("http-version-disclosure", "Server header discloses nginx/1.22.1", "low"),
    "C1": ("cookie-secure", "Cookie MoodleSession lacks Secure", None),
}
MEMBERS_YAML = f"""\
members:
  - name: Lycée Ouvert
    id: lycee
    contact: rssi@lycee.example
    language: fr
    endpoints: [{ENDPOINT}]
  - name: Quiet School
    id: quiet
    contact: it@quiet.example
    notify: false
    endpoints: [https://quiet.example/]
"""


def members() -> list[dict]:
    return [m.model_dump(mode="json") for m in parse_members(MEMBERS_YAML, "m.yaml").members]


def remediation_of(check: str) -> str:
    from scanner.notify.plan import check_texts

    return check_texts()[check].remediation


def result(member: str, target: str, failing: dict[str, str], errors: tuple[str, ...] = ()):
    """An endpoint result where the controls in ``failing`` (control -> status) fail/error, others pass."""
    by_control = {}
    for control, status in failing.items():
        check, title, severity = FAILS[control]
        by_control[control] = [finding(check, control, status, title if status == "fail" else
                                       f"Could not be assessed: {title}", severity=severity,
                                       remediation=remediation_of(check) if status == "fail" else None)]
    return make_target("endpoint", target, by_control, member=member, member_name=member)


def record_run(store: Store, when: datetime, failing: dict[str, str], quiet: dict[str, str] | None = None
               ) -> int:
    """A complete run started at ``when``: lycee's endpoint with ``failing``, quiet's with ``quiet``."""
    targets = [Target(kind="endpoint", target=ENDPOINT, host="lycee.example", port=443, member="lycee"),
               Target(kind="endpoint", target="https://quiet.example/", host="quiet.example", port=443,
                      member="quiet")]
    rec = store.start_run(targets, baseline_id="pledge4", baseline_version="1", tool_version="0",
                          members=members())
    with rec:
        rec.on_result(result("lycee", ENDPOINT, failing))
        rec.on_result(result("quiet", "https://quiet.example/", quiet or {"H2": "fail"}))
    with store.engine.begin() as c:
        c.execute(update(RunRow).where(RunRow.id == rec.run_id).values(started_at=when))
    return rec.run_id


def day(n: int) -> datetime:
    return DAY0 + timedelta(days=n)
