"""The TLS probers' share of an address's connection cap is elastic: each of their connections takes a
slot of the address as it opens (the gate) and gives it back when its socket closes, so they use what
the HTTP probes leave free at the moment, grow when the HTTP connections close, and never exceed the cap.
Counted, never timed."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from scanner.collectors.tls.gate import Gate
from scanner.net.politeness import Politeness

ADDR = "127.6.0.1"  # a key only: nothing connects to it


async def _turns(n: int = 50) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_tls_connections_take_the_slots_http_leaves_free_and_grow_when_it_closes():
    async def main() -> tuple[int, int, int, int]:
        polite = Politeness.local(per_address_connections=3, requests_per_second=100)
        loop = asyncio.get_running_loop()
        gate = Gate(ADDR, polite, loop)
        slots = polite.budget._of(ADDR).slots  # type: ignore[attr-defined]
        with ThreadPoolExecutor(3) as threads:
            http = polite.connections(ADDR)
            await http.__aenter__()  # an HTTP connection of the address holds one slot
            futures = [loop.run_in_executor(threads, gate.enter) for _ in range(3)]
            done, pending = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
            while len(done) < 2:
                more, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                done |= more
            await _turns()
            # Given one slot held by HTTP, two TLS connections opened and the third waits for a slot
            while_http = len(done)
            free_then = slots._value
            await http.__aexit__(None, None, None)  # the HTTP connection closes
            ends = [f.result() for f in done]
            ends.append(await asyncio.wait_for(next(iter(pending)), 30))  # the third gets its slot
            held_by_tls = 3 - slots._value
            for end in ends:  # the sockets close
                end()
            await _turns()
            return while_http, free_then, held_by_tls, slots._value

    while_http, free_then, held_by_tls, free_at_end = asyncio.run(main())
    assert while_http == 2 and free_then == 0  # never more than the cap: 1 HTTP + 2 TLS
    assert held_by_tls == 3  # the slot HTTP gave back went to TLS at once
    assert free_at_end == 3  # each closed socket gave its slot back


def test_a_gate_gives_back_what_its_connections_hold_when_the_collector_ends():
    async def main() -> int:
        polite = Politeness.local(per_address_connections=2, requests_per_second=0)
        loop = asyncio.get_running_loop()
        gate = Gate(ADDR, polite, loop)
        with ThreadPoolExecutor(2) as threads:
            await asyncio.gather(*(loop.run_in_executor(threads, gate.enter) for _ in range(2)))
        gate.close()  # sockets never closed (a cancelled collector): the gate's end frees their slots
        await _turns()
        return polite.budget._of(ADDR).slots._value  # type: ignore[attr-defined]

    assert asyncio.run(main()) == 2
