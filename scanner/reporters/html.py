"""HTML report: one self-contained file (inline CSS and SVG, no script, no external asset).

Rendered with Jinja2 from the installed ``templates`` package with autoescaping on: everything that
came from a server (titles quoting headers, cookie names, evidence) is escaped by the template engine.
Python builds a small view model (grouping, counts, bounded evidence trees); the templates only lay
it out. ``make_environment`` is shared with the other HTML reports (portfolio, member, diff).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, TextIO

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context
from markupsafe import Markup

from scanner import i18n
from scanner.baseline import Baseline, grade_order, load_baseline
from scanner.models import ControlResult, Finding, Report, Severity, Status, TargetResult
from scanner.reporters import (
    finding_severity,
    jsonable,
    readable,
    report_baseline,
    severity_counts,
    top_finding,
)
from scanner.reporters.stream import ReportStream, as_stream

TEMPLATE_PACKAGE = "templates"
MAX_TEXT = 500  # characters of one evidence string shown
MAX_ITEMS = 50  # entries of one evidence list or mapping shown
MAX_DEPTH = 6  # nesting of evidence shown
MAX_NODES = 1500  # evidence nodes shown per finding
INLINE_ITEMS = 12  # a list of at most this many short values is shown on one line
INLINE_TEXT = 80  # ... each at most this long
MAX_FIXES = 15  # entries of the cross-target "what to fix first" list
DEFAULT_AREAS = {"T": "Encrypted transport", "H": "HTTPS enforcement and browser protections",
                 "C": "Cookies", "E": "Exposed surfaces", "D": "Domain and e-mail"}
def N_(text: str) -> str:  # noqa: N802 - gettext's conventional name: marks a text for extraction
    return text


STATUS_LABELS = {"pass": N_("Pass"), "warn": N_("Warning"), "fail": N_("Fail"), "error": N_("Not assessed"),
                 "not_applicable": N_("Not applicable")}
CHANGE_LABELS = {"newly_failing": N_("newly failing"), "regressed": N_("regressed"), "fixed": N_("fixed"),
                 "improved": N_("improved"), "changed": N_("changed")}
SEVERITY_LABELS = {"critical": N_("Critical"), "high": N_("High"), "medium": N_("Medium"), "low": N_("Low"),
                   "info": N_("Info")}
_GRADE_ORDER = [*grade_order(), load_baseline().grading.undecided_grade]
STATUS_ICONS = {"pass": "✓", "warn": "!", "fail": "✗", "error": "?", "not_applicable": "–"}


# -- bounded evidence trees ---------------------------------------------------------------------

@dataclass
class EvNode:
    """One node of an evidence tree, ready for the ``evidence`` macro.

    kind: ``text`` (``text``, ``clipped`` characters cut), ``none``, ``map`` (``entries``: key, node),
    ``list`` (``values``), ``table`` (``columns``, ``rows`` of nodes); ``more``: entries not shown;
    ``inline``: a list of a few short values, or a small flat record in a table cell, laid out on one line.
    """

    kind: str
    text: str = ""
    clipped: int = 0
    entries: list[tuple[str, EvNode]] = field(default_factory=list)
    values: list[EvNode] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[EvNode]] = field(default_factory=list)
    more: int = 0
    inline: bool = False  # a short list or small record shown on one line (``a · b · c``)


def clip(text: Any, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (the template escapes it)."""
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[:limit] + "…"


def shape_evidence(value: Any, *, max_text: int = MAX_TEXT, max_items: int = MAX_ITEMS,
                   max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> EvNode:
    """Turn arbitrary JSON evidence into a bounded tree of ``EvNode`` (text is never marked safe)."""
    budget = [max_nodes]

    def text(v: Any) -> EvNode:
        if v is None:
            return EvNode("none", "—")
        s = ("yes" if v else "no") if isinstance(v, bool) else readable(str(v))
        if len(s) > max_text:
            return EvNode("text", s[:max_text], clipped=len(s) - max_text)
        return EvNode("text", s)

    def scalar(v: Any) -> bool:
        return not isinstance(v, Mapping | list)

    def walk(v: Any, depth: int) -> EvNode:
        budget[0] -= 1
        if budget[0] < 0:
            return EvNode("text", "…", clipped=0)
        if scalar(v):
            return text(v)
        if depth >= max_depth:
            return EvNode("text", clip(repr(v), max_text))
        if isinstance(v, Mapping):
            items = list(v.items())
            node = EvNode("map", more=max(0, len(items) - max_items))
            node.entries = [(clip(k, 120), walk(x, depth + 1)) for k, x in items[:max_items]]
            return node
        shown = v[:max_items]
        more = max(0, len(v) - max_items)
        if short_list(v):
            return EvNode("list", values=[text(x) for x in v], inline=True)
        if shown and all(isinstance(x, Mapping) for x in shown):
            cols = list(dict.fromkeys(str(k) for x in shown for k in x))
            # a column empty in every row says nothing (a hop without Location); keep one column at least
            cols = [c for c in cols if any({str(k): y for k, y in x.items()}.get(c) not in (None, [], {})
                                           for x in shown)] or cols[:1]
            # one record reads better as a list of key/value lines, unless it is a short one (a lone hop)
            fits = len(cols) <= 8 if len(shown) >= 2 else len(cols) <= 5
            if fits and all(cell_ok(c, shown) for c in cols):
                rows = []
                for x in shown:
                    row_map = {str(k): y for k, y in x.items()}
                    rows.append([cell(row_map.get(c), depth + 1) if c in row_map else EvNode("none", "")
                                 for c in cols])
                return EvNode("table", columns=[clip(c, 120) for c in cols], rows=rows, more=more)
        return EvNode("list", values=[walk(x, depth + 1) for x in shown], more=more)

    def short_list(v: Any) -> bool:
        """A few short scalars (protocol names, header values): one line, not a bulleted column."""
        return (isinstance(v, list) and 0 < len(v) <= INLINE_ITEMS
                and all(scalar(x) and x is not None and len(str(x)) <= INLINE_TEXT for x in v))

    def flat_record(v: Any) -> bool:
        return (isinstance(v, Mapping) and 0 < len(v) <= INLINE_ITEMS
                and all(scalar(x) and len(str(x)) <= INLINE_TEXT for x in v.values()))

    def cell_ok(col: str, rows: list[Any]) -> bool:
        """A table column holds scalars, or in every row a small flat record / short list (or nothing)."""
        values = [{str(k): y for k, y in x.items()}.get(col) for x in rows]
        if all(scalar(y) for y in values):
            return True
        return all(y is None or flat_record(y) or short_list(y) or y == [] for y in values)

    def cell(v: Any, depth: int) -> EvNode:
        if isinstance(v, Mapping):
            budget[0] -= 1
            return EvNode("map", entries=[(clip(k, 120), text(x)) for k, x in v.items()], inline=True)
        return walk(v, depth)

    return walk(jsonable(value), 0)


# -- view model ---------------------------------------------------------------------------------

@dataclass
class FindingView:
    finding: Finding
    severity: Severity | None
    evidence: EvNode | None
    show_remediation: bool
    open_evidence: bool = False  # folded by default: a click away, left out of print unless opened
    untrusted_tls: str | None = None  # read over HTTPS whose certificate did not validate: why
    show_detail: bool = True  # False when the title already says it ("Could not be assessed: <detail>")


@dataclass
class ControlView:
    result: ControlResult
    anchor: str
    requirement: str | None
    references: tuple[str, ...]
    findings: list[FindingView]
    top: Finding | None
    open: bool = False  # unfolded: failing, warning, or not assessed (unless its whole area is)
    shared_remediation: str | None = None  # one "What to do" for all its failing/warning findings
    show_top: bool = True  # the top finding's title in the folded line (not when the area says it once)


@dataclass
class AreaView:
    code: str
    name: str
    controls: list[ControlView]

    @property
    def to_act(self) -> list[ControlView]:
        """Failing, warning and unassessed controls: shown one by one."""
        return [c for c in self.controls if c.result.status in (Status.FAIL, Status.WARN, Status.ERROR)]

    @property
    def settled(self) -> list[ControlView]:
        """Passing and not-applicable controls: folded into one line for the area."""
        return [c for c in self.controls if c.result.status in (Status.PASS, Status.NOT_APPLICABLE)]

    @property
    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for c in self.controls:
            out[c.result.status.value] += 1
        return out

    @property
    def unassessed_reasons(self) -> list[str]:
        """When no control of the area could be assessed: the distinct reasons (shown once)."""
        if not self.controls or any(c.result.status != Status.ERROR for c in self.controls):
            return []
        reasons = [f.finding.detail or f.finding.title for c in self.controls for f in c.findings
                   if f.finding.status == Status.ERROR]
        return list(dict.fromkeys(reasons))[:5]


@dataclass
class TargetView:
    result: TargetResult
    anchor: str
    areas: list[AreaView]
    priorities: list[ControlView]  # failing then warning controls, heaviest first
    fails: dict[str, int]
    warns: int
    not_assessed: int
    not_applicable: int
    grade_note: str | None = None  # why the grade is lower than the score alone would give
    untrusted_tls: str | None = None  # pages were fetched although the certificate did not validate

    @property
    def undecided(self) -> int:
        return max(0, self.result.applicable - self.result.decided)


@dataclass
class FixView:
    """One entry of the cross-target "what to fix first" list: a control that fails (or warns) the same
    way on one or more targets, so that one server change may fix all of them."""

    control: ControlView  # the first (worst) occurrence: id, title, severity, status
    remediation: str | None
    targets: list[tuple[str, str]]  # (anchor of the control on that target, target name)

    @property
    def status(self) -> Status:
        return self.control.result.status

    @property
    def severity(self) -> Severity:
        return self.control.result.severity


@dataclass
class MemberView:
    id: str | None
    name: str
    grade: str
    targets: list[TargetView]


def area_names(baseline: Baseline | None) -> dict[str, str]:
    return dict(baseline.areas) if baseline is not None else dict(DEFAULT_AREAS)


def target_view(result: TargetResult, index: int, baseline: Baseline | None, *,
                evidence: bool = True) -> TargetView:
    """``result`` as the report shows it (``t<index>`` its anchor); ``evidence=False`` leaves the
    evidence trees out (a summary: counts, priorities, notes; see ``html_stream``)."""
    anchor = f"t{index}"
    names = area_names(baseline)
    views: list[ControlView] = []
    for c in result.controls:
        requirement, references = None, ()
        if baseline is not None:
            try:
                bc = baseline.control(c.id)
                requirement, references = bc.requirement, bc.references
            except KeyError:
                pass
        findings = [finding_view(f, c, evidence) for f in _ordered(c.findings)]
        acting = [fv for fv in findings if fv.show_remediation]
        fixes = {fv.finding.remediation for fv in acting}
        shared = None
        if len(acting) > 1 and len(fixes) == 1:  # say it once, not under every finding
            shared = acting[0].finding.remediation
            for fv in acting:
                fv.show_remediation = False
        views.append(ControlView(result=c, anchor=f"{anchor}-{c.id}", requirement=requirement,
                                 references=tuple(references), findings=findings, top=top_finding(c),
                                 open=c.status in (Status.FAIL, Status.WARN, Status.ERROR),
                                 shared_remediation=shared))
    order = list(names) + sorted({v.result.area for v in views} - set(names))
    areas = [AreaView(code=a, name=names.get(a, a), controls=[v for v in views if v.result.area == a])
             for a in order]
    for area in areas:
        if area.unassessed_reasons:  # one note for the area instead of N unfolded copies of the reason
            for v in area.controls:
                v.open = v.show_top = False
    priorities = sorted((v for v in views if v.result.status in (Status.FAIL, Status.WARN)),
                        key=lambda v: (v.result.status != Status.FAIL, -v.result.severity.rank))
    statuses = [c.status for c in result.controls]
    return TargetView(
        result=result, anchor=anchor, areas=[a for a in areas if a.controls], priorities=priorities,
        fails=severity_counts(result.controls, Status.FAIL), warns=statuses.count(Status.WARN),
        not_assessed=statuses.count(Status.ERROR), not_applicable=statuses.count(Status.NOT_APPLICABLE),
        grade_note=grade_note(result, baseline), untrusted_tls=untrusted_tls_note(views),
    )


def finding_view(f: Finding, c: ControlResult, evidence: bool = True) -> FindingView:
    acting = f.status in (Status.FAIL, Status.WARN)
    detail = (f.detail or "").strip()
    return FindingView(
        finding=f,
        severity=finding_severity(f, c),
        evidence=shape_evidence(f.evidence) if f.evidence and evidence else None,
        show_remediation=bool(f.remediation) and acting,
        open_evidence=False,
        untrusted_tls=untrusted_tls(f.evidence),
        show_detail=bool(detail) and not (f.status == Status.ERROR and f.title.endswith(detail)),
    )


def untrusted_tls(evidence: Any) -> str | None:
    """The TLS error when the evidence was read over HTTPS whose certificate did not validate.

    The http collector fetches such a site anyway (``tls_verified: false``, ``tls_error``) so header
    and cookie checks still run; the report must say so. Looks at the finding's evidence and the hops
    of a redirect chain in it.
    """
    if not isinstance(evidence, Mapping):
        return None
    records = [evidence] + [x for v in evidence.values() if isinstance(v, list) for x in v
                            if isinstance(x, Mapping)]
    for r in records:
        if r.get("tls_verified") is False:
            return plain_tls_error(r.get("tls_error"))
    return None


def plain_tls_error(error: Any) -> str:
    """OpenSSL's message without its code and source location: "[SSL: CERTIFICATE_VERIFY_FAILED]
    certificate verify failed: certificate has expired (_ssl.c:1006)" -> "certificate has expired"."""
    text = re.sub(r"^\[SSL: [A-Z_]+\] ", "", str(error or "")).strip()
    text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text)
    text = re.sub(r"^certificate verify failed: ", "", text)
    return clip(text or "the certificate did not validate", 300)


def untrusted_tls_note(views: list[ControlView]) -> str | None:
    """Why the certificate failed, when any non-TLS finding was read over an unverified connection."""
    for v in views:
        for fv in v.findings:
            if fv.untrusted_tls:
                return fv.untrusted_tls
    return None


def grade_note(result: TargetResult, baseline: Baseline | None) -> str | None:
    """Explain a grade capped below what the score gives (e.g. score 82 but a critical fail: F)."""
    if baseline is None or result.grade in ("A+", "?"):
        return None
    g = baseline.grading
    by_score = next((name for name, minimum in g.letters if result.score >= minimum), g.letters[-1][0])
    if by_score == result.grade:
        return None
    causes = [c for c in result.controls if c.status == Status.FAIL
              and g.fail_caps.get(c.severity.value) == result.grade]
    lang = i18n.current()
    _, ngettext = i18n.gettext_for(lang), i18n.ngettext_for(lang)
    if causes:
        names = ", ".join(f"{c.id} {i18n.tr(c.title, lang)}" for c in causes[:5]) + (
            " ..." if len(causes) > 5 else "")
        severity = _(SEVERITY_LABELS.get(causes[0].severity.value, causes[0].severity.value)).lower()
        return ngettext("A score of %(score)d alone would give %(by_score)s; the %(severity)s failure "
                        "(%(names)s) caps the grade at %(grade)s.",
                        "A score of %(score)d alone would give %(by_score)s; the %(severity)s failures "
                        "(%(names)s) cap the grade at %(grade)s.", len(causes)) % {
            "score": result.score, "by_score": by_score, "severity": severity, "names": names,
            "grade": result.grade}
    if g.warn_cap == result.grade and any(c.status == Status.WARN for c in result.controls):
        text = _("A score of %(score)d alone would give %(by_score)s; warnings cap the grade at %(grade)s.")
        return text % {"score": result.score, "by_score": by_score, "grade": result.grade}
    return None


def _ordered(findings: Iterable[Finding]) -> list[Finding]:
    rank = {s: i for i, s in enumerate((Status.FAIL, Status.ERROR, Status.WARN, Status.PASS,
                                        Status.NOT_APPLICABLE))}
    return sorted(findings, key=lambda f: rank[f.status])


def target_rank(result: TargetResult) -> tuple[int, float, str]:
    """Sort key, worst first: F ... A+, then targets that could not be assessed; lower score first."""
    grade = result.grade if result.grade in _GRADE_ORDER else "?"
    return (-_GRADE_ORDER.index(grade) if grade != "?" else 1, result.score, result.target)


def worst_first(results: Iterable[TargetResult]) -> list[TargetResult]:
    return sorted(results, key=target_rank)


def fix_first(targets: list[TargetView], limit: int = MAX_FIXES) -> list[FixView]:
    """Failing then warning controls across targets, grouped by control and remediation: heaviest
    severity first, then the fix shared by the most targets (one server change, many endpoints)."""
    groups: dict[tuple[str, str], FixView] = {}
    for tv in targets:
        for cv in tv.priorities:
            fix = cv.shared_remediation or (cv.top.remediation if cv.top is not None else None)
            key = (cv.result.id, fix or "")
            if key not in groups:
                groups[key] = FixView(control=cv, remediation=fix, targets=[])
            groups[key].targets.append((cv.anchor, tv.result.target))
    fixes = sorted(groups.values(), key=lambda f: (f.status != Status.FAIL, -f.severity.rank,
                                                   -len(f.targets), f.control.result.id))
    return fixes[:limit]


def member_views(targets: list[TargetView]) -> list[MemberView]:
    """Targets grouped by member (only members that are set), member grade = worst of its targets."""
    groups: dict[str, list[TargetView]] = {}
    for t in targets:
        if t.result.member is not None:
            groups.setdefault(t.result.member, []).append(t)
    return [MemberView(id=mid, name=ts[0].result.member_name or mid,
                       grade=Baseline.worst_grade(t.result.grade for t in ts), targets=ts)
            for mid, ts in groups.items()]


def report_context(report: Report) -> dict[str, Any]:
    """Everything ``report.html`` needs."""
    baseline = report_baseline(report)
    targets = [target_view(t, i, baseline) for i, t in enumerate(worst_first(report.targets), start=1)]
    return {
        "report": report,
        "baseline": baseline,
        "baseline_title": baseline.title if baseline else f"Baseline {report.baseline.id}",
        "targets": targets,
        "target_details": targets,
        "members": member_views(targets),
        "fixes": fix_first(targets),
        "grades": grade_distribution(t.grade for t in report.targets),
        "stats": shape_evidence(report.stats) if report.stats else None,
    }


def grade_distribution(grades: Iterable[str]) -> dict[str, int]:
    """{grade: number of targets}, best grade first (unknown grades last, as first seen)."""
    counts: dict[str, int] = {}
    for grade in grades:
        counts[grade] = counts.get(grade, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: _GRADE_ORDER.index(kv[0])
                       if kv[0] in _GRADE_ORDER else 99))


# -- environment --------------------------------------------------------------------------------

def code_spans(text: Any, limit: int = 2000) -> list[tuple[bool, str]]:
    """``text`` (clipped) cut into (is_code, part): remediation texts quote configuration between
    backticks (`add_header ...`), which the templates show as <code>. Parts stay plain text (escaped)."""
    parts = clip(text, limit).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: show it as written
        return [(False, clip(text, limit))]
    return [(i % 2 == 1, part) for i, part in enumerate(parts) if part]


def grade_class(grade: str) -> str:
    """CSS class of a grade: ``g-Aplus``, ``g-A`` ... ``g-F``, ``g-unknown``."""
    safe = {"A+": "Aplus", "A": "A", "B": "B", "C": "C", "D": "D", "E": "E", "F": "F"}
    return "g-" + safe.get(str(grade), "unknown")


def format_datetime(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.strftime("%Y-%m-%d %H:%M")


def make_environment(lang: str | None = None) -> Environment:
    """The Jinja2 environment of every HTML report: package templates, autoescape always on,
    undefined variables are errors, the filters/globals the macros use, and gettext in ``lang`` (default:
    ``scanner.i18n.current()``): ``_()``/``ngettext()`` for the templates' own words, ``|tr`` for data
    texts (control titles, requirements, area names, remediation), ``LANG``/``DIR`` for ``<html>``."""
    lang = i18n.normalize(lang or i18n.current())
    env = Environment(
        loader=PackageLoader(TEMPLATE_PACKAGE, "."),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.globals["_"] = env.globals["gettext"] = _remembered_gettext(env.globals["gettext"],
                                                                    i18n.translations(lang).gettext)
    env.filters["tr"] = lambda text: i18n.tr(text, lang)
    env.globals["LANG"] = lang
    env.globals["DIR"] = i18n.direction(lang)
    env.globals["SEVERITY_LABELS"] = SEVERITY_LABELS
    env.globals["CHANGE_LABELS"] = CHANGE_LABELS
    env.filters["clip"] = clip
    env.filters["readable"] = readable
    env.filters["code_spans"] = code_spans
    env.filters["grade_class"] = grade_class
    env.filters["datetime"] = format_datetime
    env.globals["STATUS_LABELS"] = STATUS_LABELS
    env.globals["STATUS_ICONS"] = STATUS_ICONS
    env.globals["shape_evidence"] = shape_evidence
    return env


def _remembered_gettext(general: Any, translate: Any) -> Any:
    """Jinja2's new-style ``gettext`` (``general``), with the text of a call without variables remembered:
    a member page says "Evidence", "Check" or "Fail" thousands of times, and each said it through the
    catalogue, ``Markup`` and ``%`` formatting. The same value as ``general``: ``Markup(translation) %
    {}`` when autoescaping (every report's environment), else ``general`` itself."""
    said: dict[str, Markup] = {}

    @pass_context
    def gettext(context: Any, text: str, /, **variables: Any) -> str:
        if variables or not context.eval_ctx.autoescape:
            return general(context, text, **variables)
        done = said.get(text)
        if done is None:
            done = said[text] = Markup(translate(text)) % {}
        return done

    return gettext


@cache
def _environment(lang: str) -> Environment:
    return make_environment(lang)


class HtmlReporter:
    """``--format html``: the report a member's engineer reads."""

    format = "html"
    extension = "html"
    template = "report.html"

    def __init__(self, environment: Environment | None = None) -> None:
        self._env = environment

    @property
    def environment(self) -> Environment:
        """The given environment, else one in the current language (``scanner.i18n.using``)."""
        return self._env or _environment(i18n.current())

    def render(self, report: Report) -> str:
        return self.environment.get_template(self.template).render(**report_context(report))

    def write(self, report: Report | ReportStream, out: TextIO) -> None:
        """The same bytes as ``render``, written as they are rendered, one target in memory at a time
        (``html_stream``): memory does not grow with the number of targets."""
        from scanner.reporters.html_stream import stream_context

        with stream_context(as_stream(report)) as context:
            for chunk in self.environment.get_template(self.template).generate(**context):
                out.write(chunk)
