"""The server-side counter the politeness tests and the bench rely on: a wrong count would pass them."""

from tests.testbed.rates import most_in_window


def test_most_in_any_sliding_window():
    # 3 events within 0.9 s straddle a calendar-second boundary; the window is half-open [t, t + 1)
    assert most_in_window([0.5, 1.2, 1.4, 2.6, 3.0], 1.0) == 3
    assert most_in_window([3.0, 0.0, 1.0, 2.0], 1.0) == 1  # unsorted input; events 1.0 s apart
    assert most_in_window([5.0] * 4, 1.0) == 4
    assert most_in_window([], 1.0) == 0
