"""The baseline's aggregation and grading rules (spec: Grades)."""

from __future__ import annotations

from scanner.baseline import load_baseline
from scanner.models import Finding, Severity, Status

B = load_baseline()


def f(control: str, status: str, severity: str | None = None) -> Finding:
    return Finding(check="x-test", control=control, status=Status(status),
                   severity=Severity(severity) if severity else None, title="t")


def results(statuses: dict[str, str]):
    return [B.control_result(B.control(cid), [f(cid, st)]) for cid, st in statuses.items()]


def test_fail_dominates_then_error_then_warn():
    c = B.control("H2")
    assert B.control_result(c, [f("H2", "pass"), f("H2", "warn"), f("H2", "fail")]).status == Status.FAIL
    assert B.control_result(c, [f("H2", "pass"), f("H2", "error"), f("H2", "warn")]).status == Status.ERROR
    assert B.control_result(c, [f("H2", "pass"), f("H2", "warn")]).status == Status.WARN
    assert B.control_result(c, [f("H2", "not_applicable")]).status == Status.NOT_APPLICABLE


def test_finding_severity_overrides_control_severity_for_fails():
    r = B.control_result(B.control("T2"), [f("T2", "fail", "critical"), f("T2", "fail", "high")])
    assert r.severity == Severity.CRITICAL


def test_all_pass_is_a_plus():
    assert B.grade(results({"T1": "pass", "H5": "pass"}))[0] == "A+"


def test_critical_fail_gives_f_even_with_high_score():
    rs = results({**{f"H{i}": "pass" for i in range(1, 12)}, "T4": "fail"})
    grade, score, decided, _ = B.grade(rs)
    assert grade == "F" and decided == 12 and score > 0


def test_high_fail_caps_at_c_medium_at_b_low_and_warn_at_a():
    base = {f"H{i}": "pass" for i in range(2, 8)}
    assert B.grade(results({**base, "H1": "fail"}))[0] in ("C", "D", "F")
    assert B.grade(results({**base, "T1": "pass", "T4": "pass", "H2": "fail"}))[0] == "B"
    assert B.grade(results({"T1": "pass", "T4": "pass", "T6": "pass", "H5": "fail"}))[0] == "A"
    assert B.grade(results({"T1": "pass", "T4": "pass", "T6": "pass", "H5": "warn"}))[0] == "A"


def test_error_never_lowers_a_grade_and_is_counted():
    grade, _, decided, applicable = B.grade(results({"T1": "pass", "T2": "error", "H5": "pass"}))
    assert grade == "A+" and decided == 2 and applicable == 3


def test_nothing_decided_gives_unknown_grade():
    assert B.grade(results({"T1": "error"}))[0] == "?"


def test_member_grade_is_worst():
    assert B.worst_grade(["A+", "C", "B"]) == "C"
    assert B.worst_grade(["?", "A"]) == "A"
