"""A portal's request budget, shared by every process through Redis.

Bitrix24 meters each portal with a leaky bucket: every HTTP request (a batch counts once)
adds 1, the level drains at ``rate`` per second, and a request that would lift it above
``burst`` is refused with 503 ``QUERY_LIMIT_EXCEEDED``. All our workers talk to the same
portal, so they must share one bucket: it lives in Redis (one hash per portal) and is
updated by a Lua script, atomically, on the Redis server's clock (one clock for every host).

A request takes a slot before it is sent; when the bucket is full the caller sleeps until
the level has drained enough, instead of sending and being refused.
"""

from __future__ import annotations

import asyncio
import time

import redis

KEY_PREFIX = "b24:budget:"

# KEYS[1]: the portal's bucket; ARGV: capacity, drain per second, "take" or "fill".
# Returns "0" when a slot was taken, else the seconds to wait before trying again
# (strings: Redis truncates Lua numbers to integers).
_LEAKY_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '0')
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or tostring(now))
level = math.max(0, level - math.max(0, now - at) * rate)
local wait = 0
if ARGV[3] == 'fill' then
  level = capacity
elseif level + 1 <= capacity then
  level = level + 1
else
  wait = (level + 1 - capacity) / rate
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return tostring(wait)
"""


class PortalBudget:
    """One portal's leaky bucket in Redis: ``take`` a slot before each request.

    ``headroom`` slots are held back from the portal's burst: the portal counts a request
    when it arrives, a little after we took its slot, and requests sent by several processes
    may arrive closer together than their slots were granted. One slot covers a delay of up
    to ``1/rate`` seconds (half a second at the standard 2/s).
    """

    def __init__(
        self,
        client: redis.Redis,
        member_id: str,
        *,
        burst: int,
        rate: float,
        headroom: int = 1,
        max_wait: float = 600.0,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a budget needs burst >= 1 and rate > 0")
        self.key = f"{KEY_PREFIX}{member_id}"
        self.capacity = max(1, burst - headroom)
        self.rate = float(rate)
        self.max_wait = max_wait
        self._script = client.register_script(_LEAKY_BUCKET)
        self.waited = 0.0  # seconds spent waiting for slots, for benchmarks

    def try_take(self) -> float:
        """Take a slot now if there is one: 0.0, else the seconds until one frees."""
        return float(self._script(keys=[self.key], args=[self.capacity, self.rate, "take"]))

    def fill(self) -> None:
        """Mark the bucket full (the portal said it is): everyone waits for it to drain."""
        self._script(keys=[self.key], args=[self.capacity, self.rate, "fill"])

    def take(self) -> float:
        """Take a slot, sleeping until one frees; returns the seconds waited."""
        started = time.monotonic()
        while (wait := self.try_take()) > 0:
            self._check_wait(started, wait)
            time.sleep(wait)
        return self._done(started)

    async def take_async(self) -> float:
        """Take a slot without blocking the event loop while waiting."""
        started = time.monotonic()
        while (wait := self.try_take()) > 0:
            self._check_wait(started, wait)
            await asyncio.sleep(wait)
        return self._done(started)

    def _check_wait(self, started: float, wait: float) -> None:
        if time.monotonic() - started + wait > self.max_wait:
            raise TimeoutError(f"no request slot for {self.key} within {self.max_wait:.0f} s")

    def _done(self, started: float) -> float:
        waited = time.monotonic() - started
        self.waited += waited
        return waited
