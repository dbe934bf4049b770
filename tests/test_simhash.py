"""The exposure probes' simhash (scanner/evidence/exposure.py), counted per bit column, gives exactly
the values of the plain per-gram loop it replaced (stored evidence keeps comparing with new scans)."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.evidence.exposure import _TAG, _WORD, simhash


def reference(text: str, shingle: int = 3) -> int:
    words = _WORD.findall(_TAG.sub(" \\g<0> ", text))
    if not words:
        return 0
    grams = [" ".join(words[i:i + shingle]) for i in range(max(1, len(words) - shingle + 1))]
    acc = [0] * 64
    for g in grams:
        h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "big")
        for bit in range(64):
            acc[bit] += 1 if h >> bit & 1 else -1
    return sum(1 << bit for bit in range(64) if acc[bit] > 0)


PAGES = ["", "one", "two words", "<!doctype html><title>404</title><p>Not found</p>",
         "<html><body>" + " ".join(f"word{i % 17}" for i in range(500)) + "</body></html>",
         "a b c d", "a b a b a b"]


def test_known_pages():
    for page in PAGES:
        assert simhash(page) == reference(page), page


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "page", "<p>", "</div>", "404", "login", "x1"]), max_size=40))
def test_any_page(words):
    text = " ".join(words)
    assert simhash(text) == reference(text)


def test_a_probe_record_fingerprints_a_page_seen_before_as_the_first_time():
    """Probe.record computes a text's simhashes once (kept by the text's SHA-256): the records of the
    same "not found" page under other paths, and again later, are those of a fresh computation."""
    from scanner.evidence.exposure import Probe, normalise

    body = b"<!doctype html><title>404</title><p>Not found: /a/b.php</p>"
    for path in ("/a/b.php", "/c", "/a/b.php", "/c"):
        got = Probe.record(purpose="probe", path=path, url=f"https://h{path}", method="GET", status=404,
                           headers=(("content-type", "text/html"),), body=body)
        text = body.decode()
        assert got.simhash == f"{reference(normalise(text, path)):016x}"
        assert got.simhash_raw == f"{reference(normalise(text)):016x}"
