"""glibc malloc tuning of a long scan (issue 9): capped arenas, free memory handed back after targets.
No servers: the behaviour is glibc's, asserted through its own counters where glibc runs."""

from __future__ import annotations

import ctypes
import os

import pytest

from scanner import native_memory

GLIBC = (getattr(os, "confstr", None) and os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")


def test_the_operator_setting_wins(monkeypatch: pytest.MonkeyPatch):
    """Given MALLOC_ARENA_MAX in the environment, when the engine would cap the arenas, it leaves them."""
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert native_memory.limit_arenas() is False


def test_a_cap_of_zero_sets_nothing(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert native_memory.limit_arenas(0) is False


@pytest.mark.skipif(not GLIBC, reason="glibc only: elsewhere these are no-ops")
def test_arenas_capped_on_glibc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert native_memory.limit_arenas(8) is True  # 8 per core is glibc's own default: harmless here


@pytest.mark.skipif(not GLIBC, reason="glibc only: elsewhere these are no-ops")
def test_trim_hands_free_memory_back():
    """Given many small blocks allocated then freed (what a target's TLS work leaves), a trim releases
    memory glibc kept."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(512) for _ in range(100_000)]
    keep = blocks[-1]  # one live block on top stops free() from shrinking the heap by itself
    for b in blocks[:-1]:
        libc.free(b)
    try:
        assert native_memory.trim() is True
    finally:
        libc.free(keep)


def test_trimmer_trims_every_n_targets():
    t = native_memory.Trimmer(every=3)
    for _ in range(7):
        t.target_done()
    assert (t.count, t.trims) == (7, 2)
    never = native_memory.Trimmer(every=0)
    never.target_done()
    assert never.trims == 0
