"""Politeness per IP address kept in Redis, so that every worker of every machine draws on one budget.

The same promises as the in-process ``AddressBudget`` (``scanner.net.politeness``): at most
``per_address_connections`` connections open to an address, taken all or nothing, multi-slot holders
served first; at most ``rate_window(requests_per_second)`` request starts in any sliding window.
Each is one Lua script (atomic in Redis, timed by Redis's own clock so machines' clocks do not matter):

- connection slots are *leases* in a sorted set per address (member = holder token, score = expiry);
  a holder renews its lease while it holds it, so the slots of a worker killed with SIGKILL come back
  after ``LEASE_MS`` instead of staying counted. (Dramatiq's ``ConcurrentRateLimiter`` keeps a counter
  whose time-to-live every acquire refreshes: a dead holder's slot stays counted as long as the address
  is busy, and it cannot take several slots at once, which the TLS phase needs.)
- request starts are a sliding log per address (a sorted set of start times); the script answers how
  long to wait when the window is full.

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

log = logging.getLogger(__name__)

KEY_PREFIX = "pledgescan:polite"
LEASE_MS = 15_000  # a connection slot not renewed for this long is free again (its holder died)
RETRY_S = 1.0  # wait between tries while Redis is unreachable

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

# KEYS: starts. ARGV: n, window_ms, member. Returns 0 when the start is counted, else ms to wait.
REQUEST_START = _NOW + """
local n, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < n then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.floor(tonumber(oldest[2]) + window - now) + 1)
"""


def _rate_window(requests_per_second: float) -> tuple[int, float]:
    try:
        from scanner.net.politeness import rate_window  # the in-process budget's own definition
    except ImportError:  # pragma: no cover - before the politeness module lands
        import math

        n = max(1, math.floor(requests_per_second))
        return n, n / requests_per_second
    return rate_window(requests_per_second)


def _address_key(address: str) -> str:
    try:
        from scanner.net.politeness import address_key
    except ImportError:  # pragma: no cover
        return address.lower()
    return address_key(address)


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
                               ("request", REQUEST_START), ("drop", DROP_RESERVATION)):
                self._scripts[name] = self._client.register_script(text)
        return self._client

    def _token(self) -> str:
        return f"{self._id}:{next(self._tokens)}"

    def _keys(self, address: str) -> tuple[str, str, str]:
        base = f"{self.prefix}:{_address_key(address)}"
        return f"{base}:slots", f"{base}:reserved", f"{base}:starts"

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
        slots, reserved, _ = self._keys(address)
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

    async def request(self, address: str) -> None:
        if not self.requests_per_second:
            return
        n, window = _rate_window(self.requests_per_second)
        _, _, starts = self._keys(address)
        member = self._token()
        while True:
            wait_ms = await self._call("request", [starts], [n, int(window * 1000), member])
            if wait_ms <= 0:
                return
            await asyncio.sleep(wait_ms / 1000)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                await client.aclose()


__all__ = ["RedisAddressBudget", "LEASE_MS", "KEY_PREFIX"]
