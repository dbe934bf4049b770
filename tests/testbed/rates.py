"""Counting what a server saw: the most events inside any sliding window (tests and bench alike)."""

from __future__ import annotations

from collections.abc import Iterable


def most_in_window(times: Iterable[float], window: float) -> int:
    """The largest number of events inside any sliding window of ``window`` seconds."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
