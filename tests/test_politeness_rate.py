"""What the per-address rate means, for the in-process budget and the Redis one alike: a request counts
from its start until its end and one window after, so no window ever overlaps more than n requests of
an address, whatever moment of a request the server takes as its time (read, answered, logged) and
however long some requests run. Counted, never timed: the assertions are about how many recorded
request lifetimes meet one window, not about how long anything took.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest

from scanner.distributed.redis_budget import REQUEST_END, REQUEST_START, RedisAddressBudget
from scanner.net.politeness import AddressBudget, LocalAddressBudget, rate_window
from tests.testbed.workers import redis_url

ADDR = "127.0.250.1"  # a key only: nothing connects to it
RATE = 40.0


def most_overlapping(spans: list[tuple[float, float]], window: float) -> int:
    """The largest number of spans ``(start, end)`` that meet one window of ``window`` seconds (a window
    that begins at some span's end, the worst place: every span ending inside it or later counts)."""
    best = 0
    for _, edge in spans:
        best = max(best, sum(1 for s, e in spans if e >= edge and s < edge + window))
    return best


async def run_requests(budget: AddressBudget, count: int, seed: int,
                       spans: list[tuple[float, float]]) -> None:
    """``count`` requests to one address, each lasting 0 to 0.3 s (some answered late, as HTTP/2 streams
    queued at a server are), all asking at once; their lifetimes as seen from outside the budget."""
    rnd = random.Random(seed)

    async def one(duration: float) -> None:
        lease = await budget.begin(ADDR)
        start = time.monotonic()
        try:
            await asyncio.sleep(duration)
        finally:
            spans.append((start, time.monotonic()))
            await lease.end()

    await asyncio.gather(*(one(rnd.choice([0.0, 0.01, 0.05, 0.3])) for _ in range(count)))


def test_window_of_the_default_rate():
    assert rate_window(100.0) == (100, 1.0)
    assert rate_window(5.0) == (5, 1.0)  # --rate-limit 5
    assert rate_window(0.5) == (1, 2.0)


async def started_at_once(budget: AddressBudget, n: int) -> tuple[int, bool]:
    """Ask for n + 1 request starts at once and let the event loop turn a few times (no time passes
    that a timer could see): how many started, and whether the one beyond the window's budget waits."""
    leases = [asyncio.create_task(budget.begin(ADDR)) for _ in range(n + 1)]
    for _ in range(20 * n):
        await asyncio.sleep(0)
        if sum(t.done() for t in leases) >= n:
            break
    started = sum(t.done() for t in leases)
    last_waits = not leases[-1].done()
    for t in leases:
        t.cancel()
    await asyncio.gather(*leases, return_exceptions=True)
    return started, last_waits


def test_a_window_s_budget_can_be_used_at_once_in_process():
    # Given a budget of 40 requests per second on an address
    # When 41 requests ask at once
    started, last_waits = asyncio.run(started_at_once(LocalAddressBudget(4, RATE), int(RATE)))
    # Then 40 start without being paced, and the 41st waits for the window
    assert started == int(RATE)
    assert last_waits


def test_no_window_meets_more_requests_than_the_budget_in_process():
    spans: list[tuple[float, float]] = []

    async def main() -> None:
        await run_requests(LocalAddressBudget(4, RATE), 3 * int(RATE), 1, spans)

    asyncio.run(main())
    n, window = rate_window(RATE)
    assert len(spans) == 3 * n
    assert most_overlapping(spans, window) <= n


def test_a_request_that_never_ends_keeps_counting_until_it_does():
    async def main() -> tuple[int, int]:
        budget = LocalAddressBudget(4, 2.0)  # two per second
        first = await budget.begin(ADDR)
        second = await budget.begin(ADDR)
        third = asyncio.create_task(budget.begin(ADDR))
        await asyncio.sleep(1.5)  # a window and a half: the first two still run, so the third waits
        waiting = int(not third.done())
        await first.end()
        lease = await asyncio.wait_for(third, 5)  # one ended: a window later, the third starts
        await lease.end()
        await second.end()
        state = budget._of(ADDR)
        return waiting, len(state.every.counted) + len(state.every.running)

    waiting, counted = asyncio.run(main())
    assert waiting == 1
    assert counted == 2  # the third started as the first ran out, a window after its end


def test_a_request_ended_at_once_counts_for_one_window():
    async def main() -> int:
        budget = LocalAddressBudget(4, 1000.0)
        for _ in range(5):
            await (await budget.begin(ADDR)).end()
        return len(budget._of(ADDR).every.counted)

    assert asyncio.run(main()) == 5


@pytest.fixture
def prefix() -> str:
    redis_url()
    return f"test-rate:{uuid.uuid4().hex[:8]}"


def test_no_window_meets_more_requests_than_the_budget_across_redis_workers(prefix: str):
    spans: list[tuple[float, float]] = []

    async def worker(seed: int) -> None:
        budget = RedisAddressBudget(redis_url(), 4, RATE, prefix=prefix)
        try:
            await run_requests(budget, int(RATE), seed, spans)
        finally:
            await budget.aclose()

    async def main() -> None:  # two workers (two budgets, two Redis clients) on one address
        await asyncio.gather(worker(1), worker(2))

    asyncio.run(main())
    n, window = rate_window(RATE)
    assert len(spans) == 2 * n
    assert most_overlapping(spans, window) <= n


def test_redis_counts_a_request_until_it_ends(prefix: str):
    import redis

    client = redis.Redis.from_url(redis_url())
    start, end = client.register_script(REQUEST_START), client.register_script(REQUEST_END)
    keys = [f"{prefix}:counted"]
    second = 1_000_000
    # Given one request per second, a request that started and has not ended
    assert start(keys=keys, args=[1, second, "a", 120 * second]) == 0
    # Then another may not start, and is told to ask again soon (the first may end any moment)
    assert 0 < start(keys=keys, args=[1, second, "b", 120 * second]) <= 20_000
    # When the first ends, it counts one window more, not the two minutes it was given while it ran
    end(keys=keys, args=["a", second])
    seconds, micro = client.time()
    assert 0 < client.zscore(keys[0], "a") - (seconds * second + micro) <= second
    assert client.zcard(keys[0]) == 1
    client.delete(*keys)
    client.close()


def test_a_window_s_budget_can_be_used_at_once_across_redis(prefix: str):
    import redis

    client = redis.Redis.from_url(redis_url())
    start = client.register_script(REQUEST_START)
    keys = [f"{prefix}:counted"]
    second = 1_000_000
    # Given 40 requests per second on an address
    # When 41 requests ask one right after the other
    answers = [start(keys=keys, args=[int(RATE), second, f"r{i}", 120 * second])
               for i in range(int(RATE) + 1)]
    # Then the first 40 start at their first ask (no pacing) and the 41st is told to wait
    assert answers[:-1] == [0] * int(RATE)
    assert answers[-1] > 0
    client.delete(*keys)
    client.close()


def test_bulk_requests_leave_part_of_the_window_to_the_others():
    from scanner.net.politeness import bulk_reserve

    async def main() -> tuple[int, bool, bool]:
        budget = LocalAddressBudget(4, RATE)
        n = int(RATE)
        bulk = [asyncio.create_task(budget.begin(ADDR, bulk=True)) for _ in range(n)]
        for _ in range(20 * n):
            await asyncio.sleep(0)
        started = sum(t.done() for t in bulk)
        # a TLS handshake or an HTTP chain's next step still starts at once, ahead of the waiting bulk
        other = asyncio.create_task(budget.begin(ADDR))
        for _ in range(20):
            await asyncio.sleep(0)
        other_started = other.done()
        bulk_still_waits = not bulk[-1].done()
        for t in [*bulk, other]:
            t.cancel()
        await asyncio.gather(*bulk, other, return_exceptions=True)
        return started, other_started, bulk_still_waits

    # Given 40 requests per second on an address, When 40 bulk requests (exposure probes) ask at once
    started, other_started, bulk_still_waits = asyncio.run(main())
    # Then they take the window but for its reserve, and another request still starts
    n = int(RATE)
    assert started == n - bulk_reserve(n) and 0 < bulk_reserve(n) < n
    assert other_started and bulk_still_waits
    assert bulk_reserve(1) == 0  # --rate-limit 1: bulk requests still go


def test_redis_bulk_requests_leave_part_of_the_window_to_the_others(prefix: str):
    import redis

    from scanner.net.politeness import bulk_reserve

    client = redis.Redis.from_url(redis_url())
    start = client.register_script(REQUEST_START)
    keys = [f"{prefix}:counted", f"{prefix}:bulk"]
    second, n = 1_000_000, int(RATE)
    bulk_n = n - bulk_reserve(n)
    # Given 40 requests per second, When as many bulk requests as they may ask one after the other
    answers = [start(keys=keys, args=[n, second, f"b{i}", 120 * second, bulk_n]) for i in range(bulk_n + 1)]
    # Then all but the last start at once, and a request that is not bulk still does
    assert answers[:-1] == [0] * bulk_n and answers[-1] > 0
    assert start(keys=keys, args=[n, second, "tls", 120 * second, 0]) == 0
    client.delete(*keys)
    client.close()
