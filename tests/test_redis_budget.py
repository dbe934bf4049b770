"""The per-address politeness budget kept in Redis (a real Redis): several budgets, as several workers
would hold, never exceed the connection cap together; a multi-slot holder is served, not starved; a
dead holder's slots come back when its lease runs out; the request-rate log counts every worker; a
worker's message closes its kept-alive connections, so no slot stays held between two messages."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from scanner.distributed.redis_budget import ACQUIRE_SLOTS, RedisAddressBudget
from tests.testbed.portfolio import ServerConfig, _Handler, _Server
from tests.testbed.workers import redis_url

ADDR = "127.0.140.50"  # a key only: nothing connects to it
KEEPALIVE_ADDR, KEEPALIVE_PORT = "127.0.170.1", 18470  # a server that keeps connections alive


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


def test_a_multi_slot_taker_that_stops_waiting_holds_no_one_back(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url())
    reserved = f"{prefix}:{ADDR}:reserved"

    # Given an address with a cap of 3, one slot held, and a TLS phase waiting for all three (its
    # reservation keeps single-slot takers out meanwhile), with leases far longer than the test
    async def main() -> int:
        budget = RedisAddressBudget(redis_url(), 3, 0, prefix=prefix, lease_ms=600_000)
        try:
            async with budget.connections(ADDR, 1):
                async def take_all() -> None:
                    async with budget.connections(ADDR, 3):
                        pass

                waiting = asyncio.create_task(take_all())
                while not client.exists(reserved):
                    await asyncio.sleep(0.01)
                # When the waiting taker is cancelled (its target's deadline)
                waiting.cancel()
                await asyncio.gather(waiting, return_exceptions=True)
                # Then its reservation is gone, and another single slot can be taken beside the first
                assert not client.exists(reserved), "the cancelled taker's reservation stays"
                async with budget.connections(ADDR, 1) as held:
                    return held
        finally:
            await budget.aclose()

    assert asyncio.run(asyncio.wait_for(main(), timeout=120)) == 1
    client.close()


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
            await (await budget.begin(ADDR)).end()
        finally:
            await budget.aclose()

    # When the first worker starts a request
    asyncio.run(start(RedisAddressBudget(redis_url(), 4, 0.1, prefix=prefix)))
    # Then the second worker's request must wait for the window (Redis answers how long), and the log
    # holds one start
    client = redis.Redis.from_url(redis_url())
    ten_s = 10_000_000  # microseconds
    keys = [f"{prefix}:{ADDR}:starts"]
    wait_us = client.register_script(REQUEST_START)(keys=keys, args=[1, ten_s, "second-worker", 0])
    assert 0 < wait_us <= ten_s
    assert client.zcard(f"{prefix}:{ADDR}:starts") == 1
    client.close()


class _KeepAliveHandler(_Handler):
    protocol_version = "HTTP/1.1"  # the connection stays open after each response (Content-Length)


def test_a_message_gives_back_its_connection_slots_when_it_ends(tmp_path, monkeypatch) -> None:
    """Between two messages a worker thread's event loop sleeps, and no lease is renewed: a kept-alive
    connection left in its pool would hold a slot that other workers wait for until the lease runs out,
    and then stay open beyond the cap. So each message closes its connections when it ends."""
    import ssl

    import redis
    import trustme

    from scanner.distributed import work
    from scanner.distributed.redis_budget import KEY_PREFIX
    from scanner.engine import Scanner
    from scanner.settings import settings_from_json
    from scanner.targets import endpoint
    from tests.testbed.workers import established

    # Given a server that keeps its connections alive, and the workers' Redis budget with a cap of 2
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("ka.test").configure_cert(tls)
    server = _Server((KEEPALIVE_ADDR, KEEPALIVE_PORT), _KeepAliveHandler)
    server.cfg = ServerConfig()  # type: ignore[attr-defined]
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    monkeypatch.setenv("PLEDGESCAN_BROKER", redis_url())
    scanner = Scanner(settings_from_json({
        "timeout": 5, "ca_bundle": str(tmp_path / "ca.pem"), "only": ["H2"], "per_host_connections": 2,
        "resolve": [["ka.test", KEEPALIVE_PORT, KEEPALIVE_ADDR], ["ka.test", 80, KEEPALIVE_ADDR]]}))
    result: list[object] = []
    try:
        # When one message collects a target's HTTP evidence (in a thread of its own, as a worker's)
        thread = threading.Thread(target=lambda: result.append(work.collect_family(
            scanner, endpoint(f"https://ka.test:{KEEPALIVE_PORT}/"), "http", {}, 1)))
        thread.start()
        thread.join(timeout=60)
        open_after = established(KEEPALIVE_ADDR, KEEPALIVE_PORT)
    finally:
        server.shutdown()
        server.server_close()
    # Then the evidence was fetched, and once the message is over no connection is open and no slot held
    (evidence, _addresses, _err, stats) = result[0]  # type: ignore[misc]
    assert evidence.https.landing is not None  # type: ignore[attr-defined]
    assert stats["http_requests_per_host"]["ka.test"] >= 2  # the page and security.txt, on one connection
    assert open_after == set()
    client = redis.Redis.from_url(redis_url())
    assert client.zcard(f"{KEY_PREFIX}:{KEEPALIVE_ADDR}:slots") == 0
    client.close()
