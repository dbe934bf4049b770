"""Members file fields for messages and exclusions: ``language``, ``notify``, ``exclude_until`` and
``exclude_reason`` (YAML and CSV), with the day injected."""

from __future__ import annotations

from datetime import date

import pytest

from scanner.history.members import MembersError, parse_members

YAML = """\
members:
  - name: Lycée Ouvert
    id: lycee
    contact: rssi@lycee.example
    language: FR
    notify: false
    endpoints: [https://lycee.example/, https://old.lycee.example/]
    exclude: [https://old.lycee.example/]
    exclude_until: 2027-01-31
    exclude_reason: platform migration
  - name: Escuela
    language: es
    endpoints: [https://escuela.example/]
"""


def test_yaml_language_notify_and_exclusion_in_force() -> None:
    inv = parse_members(YAML, today=date(2027, 1, 31))
    lycee, escuela = inv.members
    assert (lycee.language, lycee.notify, escuela.language, escuela.notify) == ("fr", False, "es", True)
    [ex] = lycee.exclusions
    assert (ex.target, ex.until, ex.reason, ex.active) == ("https://old.lycee.example/", date(2027, 1, 31),
                                                            "platform migration", True)
    assert [t.target for t in inv.targets] == ["https://lycee.example/", "https://escuela.example/"]
    assert inv.warnings == []


def test_an_expired_exclusion_is_scanned_again_with_a_warning() -> None:
    inv = parse_members(YAML, today=date(2027, 2, 1))
    assert "https://old.lycee.example/" in [t.target for t in inv.targets]
    assert not inv.members[0].exclusions[0].active
    [w] = inv.warnings
    assert w.line == 8 and "ended on 2027-01-31: it is scanned again" in str(w)


def test_exclusions_are_stored_with_the_member() -> None:
    dumped = parse_members(YAML, today=date(2027, 1, 1)).members[0].model_dump(mode="json")
    assert dumped["exclusions"] == [{"target": "https://old.lycee.example/", "until": "2027-01-31",
                                     "reason": "platform migration", "active": True}]


def test_csv_fields() -> None:
    text = ("member,contact,kind,target,language,notify,exclude_until,exclude_reason\n"
            "Escola,ti@escola.example,endpoint,https://escola.example/,ar,no,,\n"
            "Escola,,exclude,https://escola.example/old/,,,2027-03-01,being rebuilt\n"
            "Escola,,endpoint,https://escola.example/old/,,,,\n")
    inv = parse_members(text, "m.csv", fmt="csv", today=date(2027, 1, 1))
    [m] = inv.members
    assert (m.language, m.notify) == ("ar", False)
    assert [(x.until, x.reason) for x in m.exclusions] == [(date(2027, 3, 1), "being rebuilt")]
    assert [t.target for t in inv.targets] == ["https://escola.example/"]


@pytest.mark.parametrize(("field_text", "line", "message"), [
    ("    language: klingon\n", 3, "unknown language 'klingon'"),
    ("    notify: maybe\n", 3, "must be true or false"),
    ("    exclude: [https://a.example/x]\n    exclude_until: soon\n", 4, "'soon' is not a date"),
    ("    exclude_reason: because\n", 3, "applies to the member's 'exclude:' list"),
])
def test_bad_fields_give_one_clear_error(field_text: str, line: int, message: str) -> None:
    text = "members:\n  - name: A\n" + field_text + "    endpoints: [https://a.example/]\n"
    with pytest.raises(MembersError) as err:
        parse_members(text, "m.yaml")
    [issue] = err.value.issues
    assert issue.line == line and message in issue.message, str(issue)


def test_csv_conflicting_language_is_an_error() -> None:
    text = ("member,kind,target,language\nA,endpoint,https://a.example/,fr\nA,endpoint,https://b.a.example/,es\n")
    with pytest.raises(MembersError) as err:
        parse_members(text, "m.csv", fmt="csv")
    assert "already has language 'fr' (line 2)" in str(err.value)
