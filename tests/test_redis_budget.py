"""The per-address politeness budget kept in Redis (a real Redis): several budgets, as several workers
would hold, never exceed the connection cap together; a multi-slot holder is served, not starved; a
dead holder's slots come back when its lease runs out; the request-rate log counts every worker."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from scanner.distributed.redis_budget import ACQUIRE_SLOTS, RedisAddressBudget
from tests.testbed.workers import redis_url

ADDR = "127.0.140.50"  # a key only: nothing connects to it


@pytest.fixture
def prefix() -> str:
    redis_url()
    return f"test-budget:{uuid.uuid4().hex[:8]}"  # not under pledgescan*, which redis_url() empties


class Holders:
    """How many holders are inside their `connections` block at once, across threads."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.exclusive_violations = 0
        self.lock = threading.Lock()

    def enter(self, n: int) -> None:
        with self.lock:
            self.now += n
            self.peak = max(self.peak, self.now)

    def leave(self, n: int) -> None:
        with self.lock:
            self.now -= n


def run_worker(url: str, prefix: str, cap: int, holders: Holders, tasks: int, rounds: int,
               multi: bool = False) -> None:
    """One 'worker': its own event loop and its own budget instance, like a separate process."""

    async def main() -> None:
        budget = RedisAddressBudget(url, cap, 0, prefix=prefix)

        async def one(i: int) -> None:
            for _ in range(rounds):
                count = cap if multi and i == 0 else 1
                async with budget.connections(ADDR, count) as held:
                    holders.enter(held)
                    await asyncio.sleep(0.002)
                    holders.leave(held)

        try:
            await asyncio.gather(*(one(i) for i in range(tasks)))
        finally:
            await budget.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("cap", [1, 3])
def test_budgets_of_several_workers_share_one_cap(prefix: str, cap: int) -> None:
    # Given three workers of six tasks each, every task opening connections to one address
    holders = Holders()
    threads = [threading.Thread(target=run_worker, args=(redis_url(), prefix, cap, holders, 6, 5))
               for _ in range(3)]
    # When they all run at once
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    # Then no more than the cap were ever inside at once, and the cap was reached
    assert holders.now == 0
    assert holders.peak == cap


def test_a_multi_slot_holder_is_served_among_single_slot_holders(prefix: str) -> None:
    # Given workers whose first task always takes every slot (as the TLS phase does) among single takers
    holders = Holders()
    threads = [threading.Thread(target=run_worker, args=(redis_url(), prefix, 3, holders, 5, 4, True))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    # Then every round finished (no starvation, no deadlock) and the cap held
    assert not any(t.is_alive() for t in threads)
    assert holders.now == 0 and holders.peak <= 3


def test_the_slots_of_a_dead_holder_come_back_after_its_lease(prefix: str) -> None:
    import redis

    # Given a holder that took both slots of an address and died without releasing them
    client = redis.Redis.from_url(redis_url())
    script = client.register_script(ACQUIRE_SLOTS)
    slots, reserved = f"{prefix}:{ADDR}:slots", f"{prefix}:{ADDR}:reserved"
    assert script(keys=[slots, reserved], args=["dead-worker", 2, 2, 300]) == 1
    assert script(keys=[slots, reserved], args=["other", 1, 2, 300]) == 0  # both slots are taken

    # When a live worker asks for them
    async def take() -> int:
        budget = RedisAddressBudget(redis_url(), 2, 0, prefix=prefix, lease_ms=300)
        try:
            async with budget.connections(ADDR, 2) as held:
                return held
        finally:
            await budget.aclose()

    # Then it gets them once the dead holder's lease has run out
    assert asyncio.run(asyncio.wait_for(take(), timeout=30)) == 2
    client.close()


def test_request_starts_of_all_workers_are_counted_in_one_log(prefix: str) -> None:
    import redis

    from scanner.distributed.redis_budget import REQUEST_START

    # Given a budget of one request per 10 seconds on one address (rate 0.1/s), and two workers
    async def start(budget: RedisAddressBudget) -> None:
        try:
            await budget.request(ADDR)
        finally:
            await budget.aclose()

    # When the first worker starts a request
    asyncio.run(start(RedisAddressBudget(redis_url(), 4, 0.1, prefix=prefix)))
    # Then the second worker's request must wait for the window (Redis answers how long), and the log
    # holds one start
    client = redis.Redis.from_url(redis_url())
    wait_ms = client.register_script(REQUEST_START)(keys=[f"{prefix}:{ADDR}:starts"],
                                                    args=[1, 10_000, "second-worker"])
    assert 0 < wait_ms <= 10_000
    assert client.zcard(f"{prefix}:{ADDR}:starts") == 1
    client.close()
