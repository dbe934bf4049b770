"""Google's CSP Evaluator test cases (tests/data/csp_evaluator_vectors.json) through checks/lib/csp.py:
each case with the peer's expectation and, where the Pledge 4 baseline decides differently on purpose
(object-src must be 'none', base-uri is always required, bypass hosts are warn), the deviation."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from checks.lib.csp import evaluate, parse_header

DATA = Path(__file__).parent / "data" / "csp_evaluator_vectors.json"
CASES = json.loads(DATA.read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["peer_test"] for c in CASES])
def test_csp_evaluator_vector(case: dict) -> None:
    problems = evaluate(parse_header([case["csp"]]))
    codes = Counter(p.code for p in problems)
    why = f"peer: {case['peer']}; deviation: {case.get('deviation', 'none')}"
    for code in case.get("present", []):
        assert codes[code], (code, dict(codes), why)
    for code in case.get("absent", []):
        assert not codes[code], (code, dict(codes), why)
    for code, n in case.get("count", {}).items():
        assert codes[code] == n, (code, dict(codes), why)
