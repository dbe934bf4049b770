"""Every TLS connection of the probers and sslyze holds a slot of its address from before it opens until
it closes, also when two collectors of the same server (targets that differ only in their path) run at
once in one process, in-process or in two threads of a worker sharing the budget through Redis.

Found with tests/test_workers.py: a scan of two workers had 3 connections open at the server with a cap
of 2. The gate that routes sslyze's sockets was registered per (address, port, name) with save and
restore, so the first of two overlapping collectors of one server, when it ended, removed the other's
gate: the other's later connections opened with no slot at all. Counted, never timed."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import trustme

from scanner.collectors.tls import gate
from scanner.net.politeness import Politeness
from tests.testbed.portfolio import ServerConfig, TLSServer
from tests.testbed.workers import established, redis_url

KEY_ADDR = "127.11.0.50"  # a key only: nothing connects to it
ADDR, PORT = "127.11.0.1", 18711  # a TLS server of this module


async def _turns(n: int = 50) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_a_collector_ending_first_leaves_the_other_collector_of_its_server_gated() -> None:
    async def main() -> tuple[bool, int, int, int]:
        polite = Politeness.local(per_address_connections=2, requests_per_second=0)
        loop = asyncio.get_running_loop()
        slots = polite.budget._of(KEY_ADDR).slots  # type: ignore[attr-defined]
        server = SimpleNamespace(ip_address=KEY_ADDR, port=443, hostname="a.test")  # what sslyze gives
        with ThreadPoolExecutor(2) as threads:
            # Given two TLS collectors of one server running at once (https://a.test/ and https://a.test/b)
            first = gate.gated(KEY_ADDR, 443, "a.test", polite, loop)
            second = gate.gated(KEY_ADDR, 443, "a.test", polite, loop)
            await first.__aenter__()
            await second.__aenter__()
            # When the first ends, and then a socket of the second opens
            await first.__aexit__(None, None, None)
            end = await loop.run_in_executor(threads, gate._hook, server)
            await _turns()
            held_while_open = 2 - slots._value
            # and the second collector ends while that socket is still open (another collector's thread)
            ending = asyncio.ensure_future(second.__aexit__(None, None, None))
            await asyncio.sleep(0.05)
            held_while_ending = 2 - slots._value
            end()  # the socket closes
            await asyncio.wait_for(ending, 10)
            return end is not None, held_while_open, held_while_ending, slots._value

    gated, held_while_open, held_while_ending, free_at_end = asyncio.run(main())
    # Then the socket went through a gate and held a slot from its opening to its closing
    assert gated
    assert held_while_open == 1
    assert held_while_ending == 1  # the ending gate waited for it, rather than freeing its slot
    assert free_at_end == 2


def test_two_worker_threads_scanning_one_server_hold_a_slot_for_every_connection_open(
        tmp_path, monkeypatch) -> None:
    """The workers' case, counted on both sides: at every moment, the TLS connections open at the server
    are at most the slots held in Redis (a connection seen open in two consecutive dumps of the kernel's
    table was open while Redis was read between them, so its slot was counted there)."""
    import redis

    from scanner.distributed import work
    from scanner.distributed.redis_budget import KEY_PREFIX
    from scanner.engine import Scanner
    from scanner.settings import settings_from_json
    from scanner.targets import endpoint

    # Given a TLS server, the workers' Redis budget with a cap of 2, and two targets of that one server
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = TLSServer(ca, ADDR, PORT, ["one.gate.test"], ServerConfig()).start()
    monkeypatch.setenv("PLEDGESCAN_BROKER", redis_url())
    scanner = Scanner(settings_from_json({
        "timeout": 5, "ca_bundle": str(tmp_path / "ca.pem"), "rate_limit": 0,
        "only": ["T1", "T2", "T3", "T4", "T5", "T6"],
        "per_host_connections": 2, "resolve": [["one.gate.test", PORT, ADDR]]}))
    client = redis.Redis.from_url(redis_url())
    slots_key = f"{KEY_PREFIX}:{ADDR}:slots"
    stop = threading.Event()
    seen = {"samples": 0, "busy": 0, "excess": 0, "worst": (0, 0), "peak": 0}

    def sample() -> None:
        before: set[tuple[bytes, int]] = set()
        while not stop.is_set():
            held = client.zcard(slots_key)
            now = established(ADDR, PORT)
            both = len(before & now)
            seen["samples"] += 1
            seen["busy"] += bool(both)
            seen["peak"] = max(seen["peak"], both)
            if both > held:
                seen["excess"] += 1
                seen["worst"] = max(seen["worst"], (both, held))
            before = now

    results: dict[str, object] = {}
    took: list[float] = []

    def collect(url: str) -> None:
        start = time.monotonic()
        results[url] = work.collect_family(scanner, endpoint(url), "tls", {}, 1)
        took.append(time.monotonic() - start)

    urls = [f"https://one.gate.test:{PORT}/", f"https://one.gate.test:{PORT}/b"]
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        # When two worker threads collect the TLS evidence of both, the second starting a little later
        # (so that the first one ends while the second still connects), three times, and again (at most
        # 20 times) until connections were seen open across two samples: a collection takes a few tenths
        # of a second here, its handshakes milliseconds each, and the samples a few tens of ms apart
        for rounds in range(1, 21):
            threads = [threading.Thread(target=collect, args=(u,)) for u in urls]
            threads[0].start()
            time.sleep(0.05)
            threads[1].start()
            for t in threads:
                t.join(timeout=60)
            if rounds >= 3 and seen["busy"]:
                break
    finally:
        stop.set()
        sampler.join()
        server.stop()
        client.close()
    # Then both were assessed, and no connection was ever open at the server without its slot held
    for url in urls:
        evidence = results[url][0]  # type: ignore[index]
        assert evidence.error is None and evidence.handshake.outcome == "completed", url  # type: ignore[attr-defined]
    # not vacuous: connections were seen open across two samples (each sample reads Redis and the
    # kernel's table; on a loaded machine a few ms apart, while a handshake here takes about as long)
    assert seen["busy"] >= 1, (seen, took)
    assert seen["excess"] == 0, (f"{seen['excess']} of {seen['samples']} samples had more connections "
                                 f"open than slots held (worst: {seen['worst'][0]} open, "
                                 f"{seen['worst'][1]} held)")
    assert 1 <= seen["peak"] <= 2


def test_a_cancelled_collector_whose_thread_runs_on_gets_no_connection_without_a_slot() -> None:
    async def main() -> tuple[object, object, bool, bool]:
        polite = Politeness.local(per_address_connections=2, requests_per_second=0)
        loop = asyncio.get_running_loop()
        server = SimpleNamespace(ip_address=KEY_ADDR, port=443, hostname="c.test")  # what sslyze gives
        go, outcomes = threading.Event(), []

        def thread_running_on() -> None:  # sslyze's thread: it goes on after its collector was cancelled
            go.wait(10)
            for _ in range(2):
                try:
                    end = gate._hook(server)
                    outcomes.append(end)
                    if end is not None:
                        end()
                except OSError as exc:
                    outcomes.append(exc)

        async def collector(work) -> None:
            async with gate.gated(KEY_ADDR, 443, "c.test", polite, loop) as opened:
                opened.work = work
                await asyncio.wrap_future(work)

        with ThreadPoolExecutor(2) as threads:
            # Given a TLS collector cancelled by its target's deadline while its thread still runs
            work = threads.submit(thread_running_on)
            task = asyncio.ensure_future(collector(work))
            await _turns()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            # When the thread opens sockets afterwards, alone and then beside a running collector
            go.set()
            await asyncio.wrap_future(work)
            refused_alone = outcomes[0]
            registered_after_thread = ("c.test" in {k[2] for k in gate._gates})
            other = gate.gated(KEY_ADDR, 443, "c.test", polite, loop)
            await other.__aenter__()
            end = await loop.run_in_executor(threads, gate._hook, server)
            gated_beside = end is not None
            if end is not None:
                end()
            await other.__aexit__(None, None, None)
            return refused_alone, outcomes[1], registered_after_thread, gated_beside

    first, second, registered_after_thread, gated_beside = asyncio.run(main())
    # Then its sockets are refused (a failed connection), never opened with no gate at all (None)
    assert isinstance(first, OSError) and isinstance(second, OSError)
    # and once the thread has ended, its gate is gone, and another collector of the server is gated
    assert not registered_after_thread
    assert gated_beside
