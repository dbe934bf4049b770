"""The public suffix list as ``scanner.net.names`` parses it is the library's own, rule for rule."""

from __future__ import annotations

import pytest
from publicsuffixlist import PublicSuffixList

from scanner.net import names


def test_the_fast_parse_gives_the_library_s_rules():
    ours, theirs = names._psl(), PublicSuffixList()
    assert ours._publicsuffix == theirs._publicsuffix
    assert ours._maxlabel == theirs._maxlabel
    assert any(not r.isascii() for r in ours._publicsuffix)  # IDN rules, and their encoded forms:
    assert any(r.startswith("xn--") or ".xn--" in r for r in ours._publicsuffix)


def test_the_list_without_idn_rules_misses_only_rules_an_ascii_name_cannot_match():
    """The list an ASCII host name without ``xn--`` labels is looked up in: every rule left out is an IDN
    one, whose forms all have a Unicode or ``xn--`` label (none IDNA-maps to plain ASCII)."""
    whole, ascii_only = names._psl(), names._psl(idn=False)
    assert ascii_only._publicsuffix < whole._publicsuffix
    assert ascii_only._maxlabel == whole._maxlabel
    for rule in whole._publicsuffix - ascii_only._publicsuffix:
        assert any(not label.isascii() or label.startswith("xn--") for label in rule.lstrip("!").split("."))
    assert all(r.isascii() for r in ascii_only._publicsuffix)


@pytest.mark.parametrize("host,domain", [
    ("www.school.example.co.uk", "example.co.uk"),
    ("a.b.city.kawasaki.jp", "city.kawasaki.jp"),  # an exception rule (!city.kawasaki.jp)
    ("x.y.kawasaki.jp", "x.y.kawasaki.jp"),  # a wildcard rule (*.kawasaki.jp)
    ("www.xn--fiqs8s.xn--55qx5d.cn", "xn--fiqs8s.xn--55qx5d.cn"),  # 公司.cn, punycoded
    ("pages.user.github.io", "user.github.io"),  # a private-section rule
    ("Host.Example.ORG.", "example.org"),
    ("192.0.2.1", "192.0.2.1"),
    ("a.b.xn--fiqs8s.xn--55qx5d.cn", "xn--fiqs8s.xn--55qx5d.cn"),
    ("shop.example.xn--p1ai", "example.xn--p1ai"),  # .рф
])
def test_registrable_domain(host, domain):
    assert names.registrable_domain(host) == domain
