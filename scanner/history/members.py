"""Members file: the secretariat's inventory (YAML or CSV) turned into typed ``Target`` records.

YAML::

    members:
      - name: Good School Network
        id: good-school              # optional; derived from the name when absent
        contact: security@good.example
        domains: [good.example]
        endpoints: [https://good.example/, https://learn.good.example/]
        exclude: [https://good.example/legacy/]   # optional
        exclude_until: 2027-01-31                 # optional: the exclusions lapse after this day
        exclude_reason: platform migration        # optional, shown in reports
        language: fr                              # optional: its pages and messages (en, fr, es, ar)
        notify: false                             # optional: scanned, but sent no messages

CSV: columns ``member,contact,kind,target`` (``kind`` is ``endpoint``, ``domain`` or ``exclude``),
separated by ``,`` or ``;`` (sniffed from the header line); optional ``id``, ``language``, ``notify``,
and for ``exclude`` rows ``exclude_until`` and ``exclude_reason``.

Every problem names the file, the line and the field. PyYAML's composed nodes carry their positions
(``start_mark``), which is all the line-awareness needed, so no extra YAML library.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from scanner.i18n import LanguageError
from scanner.i18n import normalize as normalize_language
from scanner.models import Frozen, Target
from scanner.net.names import in_scope, registrable_domain
from scanner.targets import InputError, dedupe, domain, endpoint, link_related

MEMBER_ID = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
MEMBER_KEYS = ("name", "id", "contact", "domains", "endpoints", "exclude", "exclude_until", "exclude_reason",
               "language", "notify")
CSV_COLUMNS = ("member", "contact", "kind", "target", "id", "language", "notify", "exclude_until",
               "exclude_reason")
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
MAX_MEMBERS = 10_000
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


@dataclass(frozen=True)
class Issue:
    """One problem in a members file."""

    path: str
    line: int
    field: str
    message: str
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        fld = f" {self.field}:" if self.field else ""
        return f"{where}:{fld} {self.message}" if self.level == "error" else \
            f"{where}:{fld} warning: {self.message}"


class MembersError(InputError):
    """The members file is invalid; ``issues`` lists every error (one line each)."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = sorted(issues, key=lambda i: i.line)
        issues = self.issues
        first = str(issues[0]) if issues else "invalid members file"
        more = f" (and {len(issues) - 1} more error(s))" if len(issues) > 1 else ""
        super().__init__(first + more)


class Exclusion(Frozen):
    """A target the member asked not to be scanned, until a day (inclusive) and for a reason."""

    target: str  # normalised URL or domain name
    until: date | None = None
    reason: str | None = None
    active: bool = True  # False once ``until`` has passed: the target is scanned again


class Member(Frozen):
    """A member of the coalition as listed in the members file."""

    id: str
    name: str
    contact: str | None = None
    domains: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()  # normalised URLs
    language: str | None = None  # its pages and messages; None: the command's --lang
    notify: bool = True  # False: scanned, but ``notify`` sends it nothing
    exclusions: tuple[Exclusion, ...] = ()
    line: int = 0


@dataclass
class Inventory:
    """The parsed file: members, their targets (in file order) and non-fatal warnings."""

    members: list[Member] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    def member(self, member_id: str) -> Member | None:
        return next((m for m in self.members if m.id == member_id), None)


def slugify(name: str) -> str:
    """A member ID from a name: ASCII, lower case, dashes (``Good School`` -> ``good-school``)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:64].rstrip("-")


# -- raw entries ------------------------------------------------------------------------------------------
@dataclass
class _Entry:
    """One member as read from either format, with the line of each field for error messages."""

    index: int
    line: int
    lines: dict[str, int] = field(default_factory=dict)
    name: str | None = None
    id: str | None = None
    contact: str | None = None
    domains: list[tuple[str, int]] = field(default_factory=list)
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    exclude: list[tuple[str, int]] = field(default_factory=list)
    language: str | None = None
    notify: bool = True
    exclude_until: date | None = None  # YAML: for every exclusion of the member
    exclude_reason: str | None = None
    exclude_terms: dict[str, tuple[date | None, str | None]] = field(default_factory=dict)  # CSV: per row
    broken: bool = False  # a field was already reported: no follow-on "nothing to scan" error


def load_members(path: str | Path, today: date | None = None) -> Inventory:
    """Read and validate a members file (``.csv`` is CSV, anything else YAML); raise ``MembersError``.
    ``today`` (default: the UTC date) decides which ``exclude_until`` exclusions are still in force."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except UnicodeDecodeError:
        raise MembersError([Issue(str(p), 0, "", "not UTF-8 text")]) from None
    except OSError as exc:
        raise MembersError([Issue(str(p), 0, "", f"cannot read: {exc.strerror or exc}")]) from None
    return parse_members(text, str(p), fmt="csv" if p.suffix.lower() == ".csv" else "yaml", today=today)


def parse_members(text: str, source: str = "<members>", fmt: Literal["yaml", "csv"] = "yaml",
                  today: date | None = None) -> Inventory:
    """Parse members from text; every error names the line and field."""
    issues: list[Issue] = []
    entries = _read_csv(text, source, issues) if fmt == "csv" else _read_yaml(text, source, issues)
    return _validate(entries, source, fmt, issues, today or datetime.now(UTC).date())


def _language(value: str, source: str, line: int, fld: str, issues: list[Issue]) -> str | None:
    try:
        return normalize_language(value)
    except LanguageError as exc:
        issues.append(Issue(source, line, fld, str(exc)))
        return None


def _day(value: object, source: str, line: int, fld: str, issues: list[Issue]) -> date | None:
    """A YAML date (``2027-01-31``) or its text; anything else is an error."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        issues.append(Issue(source, line, fld, f"{value!r} is not a date (YYYY-MM-DD)"))
        return None


def _read_yaml(text: str, source: str, issues: list[Issue]) -> list[_Entry]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        issues.append(Issue(source, line, "", f"not valid YAML: {problem}"))
        return []
    if root is None:
        issues.append(Issue(source, 0, "members", "the file is empty: expected a 'members:' list"))
        return []
    seq = root
    if isinstance(root, yaml.MappingNode):
        found = None
        for k, v in root.value:
            key = _scalar(k)
            if key == "members":
                found = v
            else:
                issues.append(Issue(source, _line(k), str(key), "unknown top-level key (expected 'members')"))
        if found is None:
            issues.append(Issue(source, _line(root), "members", "missing 'members:' list"))
            return []
        seq = found
    if not isinstance(seq, yaml.SequenceNode):
        issues.append(Issue(source, _line(seq), "members", "must be a list of members"))
        return []
    if len(seq.value) > MAX_MEMBERS:
        issues.append(Issue(source, _line(seq), "members", f"more than {MAX_MEMBERS} members"))
        return []
    entries = []
    for i, node in enumerate(seq.value):
        where = f"members[{i}]"
        if not isinstance(node, yaml.MappingNode):
            issues.append(Issue(source, _line(node), where,
                                "each member must be a mapping (name:, domains:, ...)"))
            continue
        e = _Entry(index=i, line=_line(node))
        for k, v in node.value:
            key = _scalar(k)
            fld = f"{where}.{key}"
            if key not in MEMBER_KEYS:
                e.broken = True
                issues.append(Issue(source, _line(k), fld,
                                    f"unknown field (expected one of: {', '.join(MEMBER_KEYS)})"))
                continue
            if key in e.lines:  # PyYAML keeps the last of duplicate keys silently
                e.broken = True
                issues.append(Issue(source, _line(k), fld, f"given twice (first on line {e.lines[key]})"))
                continue
            e.lines[key] = _line(v)
            if key in ("language", "notify", "exclude_until", "exclude_reason"):
                _member_option(e, key, v, fld, source, issues)
                continue
            if key in ("name", "id", "contact"):
                val = _scalar(v)
                if isinstance(val, int | float) and not isinstance(val, bool):
                    val = v.value  # as written: "id: 007" is "007", not the YAML 1.1 integer 7
                if not isinstance(val, str | int) or isinstance(val, bool) or str(val).strip() == "":
                    e.broken = True
                    issues.append(Issue(source, _line(v), fld, "must be a non-empty text value"))
                    continue
                setattr(e, key, str(val).strip())
            else:
                items = [v] if isinstance(v, yaml.ScalarNode) and _scalar(v) is not None else \
                    v.value if isinstance(v, yaml.SequenceNode) else None
                if items is None and _scalar(v) is None:
                    items = []
                if items is None:
                    e.broken = True
                    issues.append(Issue(source, _line(v), fld, "must be a list of text values"))
                    continue
                for j, item in enumerate(items):
                    val = _scalar(item) if isinstance(item, yaml.ScalarNode) else None
                    if not isinstance(val, str) or not val.strip():
                        e.broken = True
                        issues.append(Issue(source, _line(item), f"{fld}[{j}]", "must be a text value"))
                        continue
                    getattr(e, key).append((val.strip(), _line(item)))
        entries.append(e)
    return entries


def _member_option(e: _Entry, key: str, node: Any, fld: str, source: str, issues: list[Issue]) -> None:
    """``language``, ``notify``, ``exclude_until``, ``exclude_reason`` of a YAML member."""
    val = _scalar(node)
    n = len(issues)
    if key == "notify":
        if not isinstance(val, bool):
            issues.append(Issue(source, _line(node), fld, "must be true or false"))
        else:
            e.notify = val
    elif val is ... or val is None or str(val).strip() == "":
        issues.append(Issue(source, _line(node), fld, "must be a non-empty text value"))
    elif key == "language":
        e.language = _language(str(val), source, _line(node), fld, issues)
    elif key == "exclude_until":
        e.exclude_until = _day(val, source, _line(node), fld, issues)
    else:
        e.exclude_reason = str(val).strip()
    e.broken = e.broken or len(issues) > n


def _scalar(node: Any) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return ...  # sentinel: not a scalar
    return _CONSTRUCTOR.construct_object(node)


def _line(node: Any) -> int:
    return int(node.start_mark.line) + 1


def csv_delimiter(text: str) -> str:
    """``,`` or ``;`` (French and German Excel save CSV with ``;``), sniffed from the header line."""
    header = text.split("\n", 1)[0]
    try:
        return csv.Sniffer().sniff(header, delimiters=",;").delimiter
    except csv.Error:
        return ";" if header.count(";") > header.count(",") else ","


def _read_csv(text: str, source: str, issues: list[Issue]) -> list[_Entry]:
    text = text.removeprefix("\ufeff")  # spreadsheets' "CSV UTF-8" starts with a byte-order mark
    if not text.strip():
        issues.append(Issue(source, 0, "members", "the file is empty: expected a header line "
                            "member,contact,kind,target and one row per target"))
        return []
    sep = csv_delimiter(text)
    reader = csv.DictReader(io.StringIO(text), delimiter=sep)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in ("member", "kind", "target") if c not in header]
    if missing:
        issues.append(Issue(source, 1, ",".join(missing),
                            f"missing CSV column(s); read the header with the separator {sep!r} "
                            f"(',' and ';' are accepted) and found {len(header)} column(s); "
                            "expected header: member,contact,kind,target"))
        return []
    unknown = [h for h in header if h and h not in CSV_COLUMNS]
    if unknown:  # a misspelt optional column (say "contcat") would otherwise be dropped silently
        issues.append(Issue(source, 1, ",".join(unknown),
                            f"unknown column(s) (expected: {', '.join(CSV_COLUMNS)})"))
        return []
    reader.fieldnames = header
    by_name: dict[str, _Entry] = {}
    for row in reader:
        line = reader.line_num
        name = (row.get("member") or "").strip()
        kind = (row.get("kind") or "").strip().lower()
        target = (row.get("target") or "").strip()
        if not name:
            issues.append(Issue(source, line, "member", "empty member name"))
            continue
        e = by_name.get(name)
        if e is None:
            e = by_name[name] = _Entry(index=len(by_name), line=line, name=name)
            e.lines["name"] = line
        for col in ("contact", "id", "language", "notify"):
            val = (row.get(col) or "").strip()
            if val:
                _csv_member_field(e, col, val, name, line, source, issues)
        if not target:
            e.broken = True
            issues.append(Issue(source, line, "target", "empty target"))
            continue
        if kind == "endpoint":
            e.endpoints.append((target, line))
        elif kind == "domain":
            e.domains.append((target, line))
        elif kind in ("exclude", "exclusion"):
            e.exclude.append((target, line))
            until_s = (row.get("exclude_until") or "").strip()
            until = _day(until_s, source, line, "exclude_until", issues) if until_s else None
            e.exclude_terms[target] = (until, (row.get("exclude_reason") or "").strip() or None)
        else:
            issues.append(Issue(source, line, "kind", f"{kind!r} is not one of: endpoint, domain, exclude"))
            continue
    return list(by_name.values())


def _csv_member_field(e: _Entry, col: str, val: str, name: str, line: int, source: str,
                      issues: list[Issue]) -> None:
    """A member-wide CSV column (contact, id, language, notify): the same on every row that gives it."""
    if col == "notify":
        if val.lower() not in _BOOLEANS:
            issues.append(Issue(source, line, col, f"{val!r} is not true or false"))
            return
        parsed: Any = _BOOLEANS[val.lower()]
    elif col == "language":
        parsed = _language(val, source, line, col, issues)
        if parsed is None:
            return
    else:
        parsed = val
    if col in e.lines and getattr(e, col) != parsed:
        issues.append(Issue(source, line, col, f"member {name!r} already has {col} "
                            f"{getattr(e, col)!r} (line {e.lines[col]})"))
    elif col not in e.lines:
        setattr(e, col, parsed)
        e.lines[col] = line


# -- validation -------------------------------------------------------------------------------------------
def _validate(entries: list[_Entry], source: str, fmt: str, issues: list[Issue], today: date) -> Inventory:
    inv = Inventory()
    ids: dict[str, int] = {}
    owner: dict[str, tuple[str, int]] = {}  # target key -> (member id, line)

    def fld(e: _Entry, name: str, j: int | None = None) -> str:
        if fmt == "csv":
            return {"domains": "target", "endpoints": "target", "exclude": "target", "name": "member"}.get(
                name, name)
        return f"members[{e.index}].{name}" + (f"[{j}]" if j is not None else "")

    for e in entries:
        if not e.name:
            if e.broken:
                continue
            issues.append(Issue(source, e.line, fld(e, "name"), "missing (every member needs a name)"))
            continue
        mid = e.id if e.id is not None else slugify(e.name)
        if not MEMBER_ID.match(mid):
            what = "id" if e.id is not None else "name"
            issues.append(Issue(source, e.lines.get(what, e.line), fld(e, what),
                                f"{mid!r} is not a valid member ID (lower-case letters, digits, "
                                "'.', '_', '-'; at most 64 characters)" if e.id is not None else
                                f"cannot derive a member ID from {e.name!r}: add an 'id:'"))
            continue
        if mid in ids:
            what = "id" if e.id is not None else "name"
            issues.append(Issue(source, e.lines.get(what, e.line), fld(e, what),
                                f"duplicate member ID {mid!r} (first used on line {ids[mid]})"))
            continue
        ids[mid] = e.lines.get("id", e.line)
        if not e.domains and not e.endpoints and not e.broken:
            issues.append(Issue(source, e.line, fld(e, "endpoints"),
                                f"member {mid!r} lists no domains and no endpoints: nothing to scan"))
            continue
        targets: list[Target] = []
        doms: list[str] = []
        for j, (name, line) in enumerate(e.domains):
            try:
                t = domain(name, member=mid, member_name=e.name)
            except InputError as exc:
                issues.append(Issue(source, line, fld(e, "domains", j), str(exc)))
                continue
            doms.append(t.target)
            targets.append(t)
        scope = tuple(dict.fromkeys(registrable_domain(d) for d in doms))
        excluded: set[str] = set()
        exclusions: list[Exclusion] = []
        for j, (name, line) in enumerate(e.exclude):
            try:
                key = endpoint(name).target if "/" in name else domain(name).target
            except InputError as exc:
                issues.append(Issue(source, line, fld(e, "exclude", j), str(exc)))
                continue
            until, reason = e.exclude_terms.get(name, (e.exclude_until, e.exclude_reason))
            active = until is None or today <= until
            exclusions.append(Exclusion(target=key, until=until, reason=reason, active=active))
            if active:
                excluded.add(key)
            else:
                inv.warnings.append(Issue(source, line, fld(e, "exclude", j),
                                          f"the exclusion of {key} ended on {until.isoformat()}: "
                                          "it is scanned again", level="warning"))
        for opt in ("exclude_until", "exclude_reason"):
            if getattr(e, opt) is not None and not e.exclude:
                issues.append(Issue(source, e.lines.get(opt, e.line), fld(e, opt),
                                    "applies to the member's 'exclude:' list, which is missing"))
        urls: list[str] = []
        for j, (url, line) in enumerate(e.endpoints):
            try:
                t = endpoint(url, member=mid, member_name=e.name)
            except InputError as exc:
                issues.append(Issue(source, line, fld(e, "endpoints", j), str(exc)))
                continue
            if t.target in excluded or t.host in excluded:
                continue
            own = registrable_domain(t.host)
            t = t.model_copy(update={"scope": tuple(dict.fromkeys((own, *scope)))})
            if doms and not any(in_scope(t.host, (d,)) for d in doms):
                inv.warnings.append(Issue(source, line, fld(e, "endpoints", j),
                                          f"{t.host} is outside the member's domains ({', '.join(doms)})",
                                          level="warning"))
            urls.append(t.target)
            targets.append(t)
        for t in targets:
            prev = owner.get(t.key)
            if prev and prev[0] != mid:
                what = "endpoints" if t.kind == "endpoint" else "domains"
                issues.append(Issue(source, e.line, fld(e, what),
                                    f"{t.target} is already listed by member {prev[0]!r} (line {prev[1]})"))
            owner.setdefault(t.key, (mid, e.line))
        targets = [t for t in targets if t.kind == "endpoint" or t.target not in excluded]
        inv.members.append(Member(id=mid, name=e.name, contact=e.contact, domains=tuple(dict.fromkeys(doms)),
                                  endpoints=tuple(dict.fromkeys(urls)), language=e.language,
                                  notify=e.notify, exclusions=tuple(exclusions), line=e.line))
        inv.targets.extend(targets)
    if not entries and not issues:
        issues.append(Issue(source, 0, "members", "no members listed"))
    if issues:
        raise MembersError(issues)
    inv.targets = link_related(dedupe(inv.targets))
    return inv


def combine(inventory: Inventory | None, cli_targets: list[Target]) -> list[Target]:
    """Members' targets plus command-line targets (not tied to a member); a target listed by a member
    keeps its member."""
    own = inventory.targets if inventory else []
    keys = {t.key for t in own}
    return link_related(dedupe([*own, *(t for t in cli_targets if t.key not in keys)]))
