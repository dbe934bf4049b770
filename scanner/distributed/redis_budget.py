"""Politeness per IP address kept in Redis, so that every worker of every machine draws on one budget.

The same promises as the in-process ``AddressBudget`` (``scanner.net.politeness``): at most
``per_address_connections`` connections open to an address, taken all or nothing, multi-slot holders
served first; the request rate as ``scanner.net.politeness`` defines it (a request counts from its start
until its end and one window after; at most n counted when one starts; no pacing).
Each is one Lua script (atomic in Redis, timed by Redis's own clock so machines' clocks do not matter):

- connection slots are *leases* in a sorted set per address (member = holder token, score = expiry);
  a holder renews its lease while it holds it, so the slots of a worker killed with SIGKILL come back
  after ``LEASE_MS`` instead of staying counted. (Dramatiq's ``ConcurrentRateLimiter`` keeps a counter
  whose time-to-live every acquire refreshes: a dead holder's slot stays counted as long as the address
  is busy, and it cannot take several slots at once, which the TLS phase needs.)
- counted requests are a sorted set per address (member = request token, score = until when it counts:
  start + ``OPEN_REQUEST_S`` + window while it runs, end + window once it ended, so a dead worker's
  requests stop counting after OPEN_REQUEST_S), and bulk requests in a second set as well (at most
  n - ``bulk_reserve(n)`` of them); the script answers how long to wait when the request may not start
  yet.

When Redis cannot be reached the budget waits and retries (politeness is never skipped) and sets
``outage``, so that the work can be retried rather than recorded as a target's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scanner.net.politeness import (
    NO_LEASE,
    OPEN_REQUEST_S,
    RequestLease,
    address_key,
    bulk_reserve,
    rate_window,
)

log = logging.getLogger(__name__)

KEY_PREFIX = "pledgescan:polite"
LEASE_MS = 15_000  # a connection slot not renewed for this long is free again (its holder died)
RETRY_S = 1.0  # wait between tries while Redis is unreachable
POLL_US = 20_000  # a waiter for a window full of requests not yet ended asks again after this long

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

# KEYS: slots, reservation. ARGV: token, count, cap, lease_ms. Returns 1 when taken.
ACQUIRE_SLOTS = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local count, cap, lease = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local reserved = redis.call('GET', KEYS[2])
if reserved and reserved ~= ARGV[1] then return 0 end
if redis.call('ZCARD', KEYS[1]) + count <= cap then
  for i = 1, count do redis.call('ZADD', KEYS[1], now + lease, ARGV[1] .. '#' .. i) end
  redis.call('PEXPIRE', KEYS[1], lease * 2)
  if reserved then redis.call('DEL', KEYS[2]) end
  return 1
end
if count > 1 then redis.call('SET', KEYS[2], ARGV[1], 'PX', lease) end
return 0
"""

# KEYS: reservation. ARGV: token. A multi-slot taker that stops waiting (cancelled: its target's deadline)
# drops its reservation, which would otherwise hold every single-slot taker back until it runs out.
DROP_RESERVATION = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: slots. ARGV: token, count, lease_ms.
RENEW_SLOTS = _NOW + """
local lease = tonumber(ARGV[3])
for i = 1, tonumber(ARGV[2]) do redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[1] .. '#' .. i) end
redis.call('PEXPIRE', KEYS[1], lease * 2)
return 1
"""

_NOW_US = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"

# KEYS: counted (member -> until when it counts, microseconds), bulk (the same, for bulk requests only).
# ARGV: n, window_us, member, open_us (how long a request not yet ended counts at most), bulk_n (0: not a
# bulk request; else at most this many bulk requests count). Returns 0 when the request is counted, else
# microseconds to wait (at most POLL_US while a full set holds requests not ended: one may end any moment).
REQUEST_START = _NOW_US + """
local n, window, open = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local bulk_n = tonumber(ARGV[5] or '0')
local sets, limits = {KEYS[1]}, {n}
if bulk_n > 0 then sets[2], limits[2] = KEYS[2], bulk_n end
local wait = 0
for i, key in ipairs(sets) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= limits[i] then
    local w = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]) - now
    local last = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
    if last > now + window then w = math.min(w, """ + str(POLL_US) + """) end
    wait = math.max(wait, w, 1)
  end
end
if wait > 0 then return wait end
for _, key in ipairs(sets) do
  redis.call('ZADD', key, now + open + window, ARGV[3])
  redis.call('PEXPIRE', key, math.ceil((open + window) / 1000) + 1000)
end
return 0
"""

# KEYS: counted, bulk. ARGV: member, window_us. The request ended: it counts one window more (not at all
# again once it ran out), in the bulk set too when it is there.
REQUEST_END = _NOW_US + """
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZADD', key, 'XX', now + tonumber(ARGV[2]), ARGV[1])
end
return 1
"""


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


class _RedisLease:
    """A request counted in Redis until it ends (``RequestLease``)."""

    def __init__(self, budget: RedisAddressBudget, counted: list[str], member: str, window_us: int) -> None:
        self._budget, self._counted, self._member, self._window_us = budget, counted, member, window_us
        self._ended = False

    async def end(self) -> None:
        if not self._ended:
            self._ended = True
            await self._budget._end(self._counted, self._member, self._window_us)


class RedisAddressBudget:
    """``AddressBudget`` in Redis: one budget per address for every worker that shares the Redis."""

    def __init__(self, url: str, per_address_connections: int = 4, requests_per_second: float = 100.0,
                 *, prefix: str = KEY_PREFIX, lease_ms: int = LEASE_MS) -> None:
        self.url = url
        self.per_address_connections = max(1, per_address_connections)
        self.requests_per_second = max(0.0, requests_per_second)
        self.prefix = prefix
        self.lease_ms = lease_ms
        self.outage = False  # Redis was unreachable at some point: the work should be retried
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._tokens = itertools.count()
        self._id = uuid.uuid4().hex[:12]

    def _redis(self) -> Any:
        if self._client is None:  # created lazily, inside the event loop that uses it
            self._client = aioredis.Redis.from_url(self.url, socket_timeout=10, socket_connect_timeout=5)
            for name, text in (("acquire", ACQUIRE_SLOTS), ("renew", RENEW_SLOTS),
                               ("request", REQUEST_START), ("end", REQUEST_END),
                               ("drop", DROP_RESERVATION)):
                self._scripts[name] = self._client.register_script(text)
        return self._client

    def _token(self) -> str:
        return f"{self._id}:{next(self._tokens)}"

    def _keys(self, address: str) -> tuple[str, str, str, str]:
        base = f"{self.prefix}:{address_key(address)}"
        return f"{base}:slots", f"{base}:reserved", f"{base}:starts", f"{base}:bulk"

    async def _call(self, name: str, keys: list[str], args: list[Any]) -> int:
        """Run a script, waiting out a Redis outage (politeness is never skipped)."""
        warned = False
        while True:
            try:
                self._redis()
                return int(await self._scripts[name](keys=keys, args=args))
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.outage = True
                if not warned:
                    log.warning("politeness budget: Redis unreachable (%s); waiting for it", exc)
                    warned = True
                await asyncio.sleep(RETRY_S)

    @contextlib.asynccontextmanager
    async def connections(self, address: str, count: int = 1) -> AsyncIterator[int]:
        count = min(max(1, count), self.per_address_connections)
        slots, reserved, _, _ = self._keys(address)
        token = self._token()
        delay = 0.005
        try:
            while not await self._call("acquire", [slots, reserved],
                                       [token, count, self.per_address_connections, self.lease_ms]):
                await asyncio.sleep(delay)
                delay = min(0.1, delay * 2)
        except BaseException:
            if count > 1:
                await self._drop_reservation(reserved, token)
            raise
        renewer = asyncio.create_task(self._renew(slots, token, count))
        try:
            yield count
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await self._release(slots, token, count)

    async def _drop_reservation(self, reserved: str, token: str) -> None:
        # When Redis is away the reservation runs out by itself (one lease).
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError, asyncio.CancelledError):
            await asyncio.shield(self._scripts["drop"](keys=[reserved], args=[token]))

    async def _renew(self, slots: str, token: str, count: int) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            await self._call("renew", [slots], [token, count, self.lease_ms])

    async def _release(self, slots: str, token: str, count: int) -> None:
        members = [f"{token}#{i}" for i in range(1, count + 1)]
        # When Redis is away the lease runs out by itself.
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError, asyncio.CancelledError):
            await asyncio.shield(self._redis().zrem(slots, *members))

    async def begin(self, address: str, bulk: bool = False) -> RequestLease:
        return await self._start(address, OPEN_REQUEST_S, bulk)

    async def _start(self, address: str, open_s: float, bulk: bool = False) -> RequestLease:
        if not self.requests_per_second:
            return NO_LEASE
        n, window = rate_window(self.requests_per_second)
        _, _, counted, bulk_set = self._keys(address)
        member = self._token()
        # bulk requests count in their own set too, at most n - bulk_reserve(n) (scanner.net.politeness)
        args = [n, _us(window), member, _us(open_s), max(1, n - bulk_reserve(n)) if bulk else 0]
        while True:
            wait_us = await self._call("request", [counted, bulk_set], args)
            if wait_us <= 0:
                return _RedisLease(self, [counted, bulk_set], member, _us(window)) if open_s else NO_LEASE
            await asyncio.sleep(wait_us / 1_000_000)

    async def _end(self, counted: list[str], member: str, window_us: int) -> None:
        # When Redis is away the request stops counting after OPEN_REQUEST_S by itself.
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError, asyncio.CancelledError):
            self._redis()
            await asyncio.shield(self._scripts["end"](keys=counted, args=[member, window_us]))

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                await client.aclose()


__all__ = ["RedisAddressBudget", "LEASE_MS", "KEY_PREFIX"]
