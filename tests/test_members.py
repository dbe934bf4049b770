"""Members file: YAML and CSV to targets; every bad file gives one clear error naming line and field."""

from __future__ import annotations

import pytest

from scanner.history.members import MembersError, combine, load_members, parse_members, slugify
from scanner.targets import from_cli

GOOD = """\
members:
  - name: Good School Network
    id: good-school
    contact: security@good.example
    domains: [good.example]
    endpoints: [https://good.example/, https://learn.good.example/]
  - name: Académie Ünïcode
    endpoints:
      - learn.academie.example:8443/moodle
      - https://cdn.other.example/
    domains: academie.example
    exclude: [https://cdn.other.example/]
"""


def test_yaml_members_become_targets_with_member_ids() -> None:
    inv = parse_members(GOOD, "m.yaml")
    assert [m.id for m in inv.members] == ["good-school", "academie-unicode"]
    assert inv.members[0].contact == "security@good.example"
    keys = [(t.member, t.key) for t in inv.targets]
    assert keys == [
        ("good-school", "domain:good.example"),
        ("good-school", "endpoint:https://good.example/"),
        ("good-school", "endpoint:https://learn.good.example/"),
        ("academie-unicode", "domain:academie.example"),
        ("academie-unicode", "endpoint:https://learn.academie.example:8443/moodle"),
    ]
    ep = inv.targets[4]
    assert ep.port == 8443 and ep.member_name == "Académie Ünïcode" and "academie.example" in ep.scope
    assert inv.targets[0].related_hosts == ("good.example", "learn.good.example")
    assert inv.warnings == []


def test_endpoint_outside_the_domains_is_allowed_but_flagged() -> None:
    inv = parse_members("members:\n  - name: X\n    domains: [x.example]\n"
                        "    endpoints:\n      - https://x.example/\n      - https://hosted.lms.example/x\n")
    assert len(inv.targets) == 3
    [w] = inv.warnings
    assert w.line == 6 and w.field == "members[0].endpoints[1]" and "outside the member's domains" in str(w)


@pytest.mark.parametrize(("text", "line", "field", "message"), [
    ("members:\n  - name: A\n    endpoints: [https://a.example/]\n  - name: B\n    id: a\n"
     "    endpoints: [https://b.example/]\n", 5, "members[1].id",
     "duplicate member ID 'a' (first used on line 2)"),
    ("members:\n  - name: A\n    endpoints:\n      - https://a.example/\n      - ftp://a.example/\n",
     5, "members[0].endpoints[1]", "only http and https"),
    ("members:\n  - name: A\n    endpoints:\n      - 'https://exa mple.org/'\n",
     4, "members[0].endpoints[0]", "not a valid host name"),
    ("members:\n  - name: A\n    endpoint: [https://a.example/]\n", 3, "members[0].endpoint",
     "unknown field"),
    ("members:\n  - id: a\n    endpoints: [https://a.example/]\n", 2, "members[0].name", "missing"),
    ("members:\n  - name: A\n    contact: a@a.example\n", 2, "members[0].endpoints", "nothing to scan"),
    ("members:\n  - name: A\n    id: 'Bad ID!'\n    domains: [a.example]\n", 3, "members[0].id",
     "not a valid member ID"),
    ("members:\n  - name: A\n    domains: {a: 1}\n", 3, "members[0].domains", "must be a list"),
    ("members:\n  - name: A\n   domains: [a.example]\n", 3, "", "not valid YAML"),
    ("members: []\n", 0, "members", "no members listed"),
    ("targets:\n  - a\n", 1, "targets", "unknown top-level key"),
    ("members:\n  - name: A\n    domains: [a.example]\n  - name: B\n    domains: [a.example]\n",
     4, "members[1].domains", "already listed by member 'a' (line 2)"),
])
def test_bad_yaml_gives_one_clear_error(text: str, line: int, field: str, message: str) -> None:
    with pytest.raises(MembersError) as err:
        parse_members(text, "m.yaml")
    issue = err.value.issues[0]
    assert (issue.line, issue.field) == (line, field)
    assert message in issue.message
    assert str(err.value).startswith(f"m.yaml:{line}" if line else "m.yaml")


def test_several_errors_are_all_listed_in_line_order() -> None:
    text = "members:\n  - name: A\n    colour: red\n    endpoints: ['http://']\n"
    with pytest.raises(MembersError) as err:
        parse_members(text, "m.yaml")
    assert [i.line for i in err.value.issues] == [3, 4]
    assert "(and 1 more error(s))" in str(err.value)


def test_csv_members(tmp_path) -> None:
    p = tmp_path / "members.csv"
    p.write_text("member,contact,kind,target\n"
                 "Good School,sec@good.example,domain,good.example\n"
                 "Good School,,endpoint,https://good.example/\n"
                 "Other Org,ops@other.example,endpoint,other.example\n")
    inv = load_members(p)
    assert [m.id for m in inv.members] == ["good-school", "other-org"]
    assert inv.members[0].contact == "sec@good.example"
    assert [t.key for t in inv.targets] == ["domain:good.example", "endpoint:https://good.example/",
                                            "endpoint:https://other.example/"]


@pytest.mark.parametrize(("text", "line", "field", "message"), [
    ("member,kind,url\nA,endpoint,https://a.example/\n", 1, "target", "missing CSV column"),
    ("member,contact,kind,target\nA,,server,https://a.example/\n", 2, "kind", "not one of"),
    ("member,contact,kind,target\nA,,endpoint,https://a.example/\nA,,endpoint,gopher://x\n", 3, "target",
     "only http and https"),
    ("member,contact,kind,target\nA,a@x,endpoint,https://a.example/\nA,b@x,endpoint,https://b.example/\n",
     3, "contact", "already has contact"),
])
def test_bad_csv_gives_one_clear_error(tmp_path, text: str, line: int, field: str, message: str) -> None:
    p = tmp_path / "m.csv"
    p.write_text(text)
    with pytest.raises(MembersError) as err:
        load_members(p)
    issue = err.value.issues[0]
    assert (issue.line, issue.field) == (line, field) and message in issue.message


def test_a_field_given_twice_is_an_error_not_a_silent_override() -> None:
    text = "members:\n  - name: A\n    domains: [a.example]\n    name: B\n"
    with pytest.raises(MembersError) as err:
        parse_members(text, "m.yaml")
    assert [str(i) for i in err.value.issues] == ["m.yaml:4: members[0].name: given twice (first on line 2)"]


def test_numeric_looking_ids_keep_their_text() -> None:
    # YAML 1.1 reads 007 as the integer 7 and 1e3 as a float: the member ID must stay what was written
    inv = parse_members("members:\n  - name: 2024\n    id: 007\n    domains: [a.example]\n")
    assert [(m.id, m.name) for m in inv.members] == [("007", "2024")]


def test_csv_saved_by_a_spreadsheet_with_bom_and_crlf(tmp_path) -> None:
    # Given a CSV exported by Excel ("CSV UTF-8"): a byte-order mark and CRLF line ends
    p = tmp_path / "m.csv"
    p.write_bytes(b"\xef\xbb\xbfmember,contact,kind,target\r\nA,a@a.example,endpoint,https://a.example/\r\n")
    # Then it reads like any other CSV
    inv = load_members(p)
    assert [t.key for t in inv.targets] == ["endpoint:https://a.example/"]


@pytest.mark.parametrize(("text", "line", "field", "message"), [
    ("member,contcat,kind,target\nA,a@x,endpoint,https://a.example/\n", 1, "contcat", "unknown column"),
    ("member,kind,target\nA,endpoint\n", 2, "target", "empty target"),
    ("", 0, "members", "the file is empty"),
])
def test_csv_mistakes_give_exactly_one_error(tmp_path, text: str, line: int, field: str,
                                             message: str) -> None:
    p = tmp_path / "m.csv"
    p.write_text(text)
    with pytest.raises(MembersError) as err:
        load_members(p)
    assert len(err.value.issues) == 1, err.value.issues
    issue = err.value.issues[0]
    assert (issue.line, issue.field) == (line, field) and message in issue.message


def test_unreadable_file(tmp_path) -> None:
    with pytest.raises(MembersError, match="cannot read"):
        load_members(tmp_path / "absent.yaml")


def test_cli_targets_combine_with_members() -> None:
    inv = parse_members(GOOD)
    cli = from_cli(["https://good.example/", "https://extra.example/"], [])
    out = combine(inv, cli)
    assert [t.member for t in out if t.kind == "endpoint" and "good.example" in t.target] == \
        ["good-school", "good-school"]
    assert out[-1].target == "https://extra.example/" and out[-1].member is None


def test_slugify() -> None:
    assert slugify("Good School Network") == "good-school-network"
    assert slugify("  École & Co. ") == "ecole-co"
