"""Redis read-through cache with the seed's keys and TTLs (§4.2), phase2+.

Key families and TTLs (seconds): ``market:{zip}`` 600, ``product:{id}`` 300,
``products:available`` 120 (first catalogue page; other pages get a suffix),
``profile:{id}`` 600, ``stripe:customer:{email}`` 3600, ``farm:{id}`` 600.
Writers invalidate the keys they make stale. With caching off (phase0/1) every call
goes straight to the loader, so callers never branch on the profile.

Redis unavailable: the cache fails open -- a lookup is a miss and the loader's value
is served from the database, writes and invalidations are skipped (counted in
``marketplace_redis_fallbacks_total{part="cache"}``). With breakers on (phase3) the
Redis breaker skips Redis altogether while it is open. An invalidation lost that way
can leave a stale entry until its TTL (at most the §4.2 TTLs): the price of serving
the catalogue through an outage, which the seed's cache-aside design already accepts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from marketplace import metrics
from marketplace.breakers import Breakers

log = logging.getLogger("marketplace.cache")

TTL_S = {
    "market": 600,
    "product": 300,
    "products": 120,
    "profile": 600,
    "stripe": 3600,
    "farm": 600,
}
PRODUCTS_AVAILABLE = "products:available"


def family(key: str) -> str:
    return key.split(":", 1)[0]


class Cache:
    """Read-through JSON cache; a no-op when ``redis`` is None (cache disabled)."""

    def __init__(self, redis: Any | None, breakers: Breakers | None = None) -> None:
        self.redis = redis
        self.breakers = breakers or Breakers(enabled=False)

    async def _redis(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """One Redis call through the Redis breaker (transparent unless phase3)."""
        try:
            return await self.breakers.call("redis", call)
        except Exception:
            metrics.REDIS_FALLBACKS.labels("cache").inc()
            raise

    @property
    def enabled(self) -> bool:
        return self.redis is not None

    async def get(self, key: str) -> Any | None:
        if self.redis is None:
            return None
        try:
            raw = await self._redis(lambda: self.redis.get(key))
        except Exception:
            log.warning("cache get failed for %s", key)
            raw = None
        metrics.CACHE_REQUESTS.labels(family(key), "hit" if raw is not None else "miss").inc()
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any, ttl_s: int | None = None) -> None:
        if self.redis is None:
            return
        ttl = ttl_s or TTL_S.get(family(key), 60)
        try:
            data = json.dumps(value, default=str)
            await self._redis(lambda: self.redis.set(key, data, ex=ttl))
        except Exception:
            log.warning("cache set failed for %s", key)

    async def cached(self, key: str, load: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value, or the loader's (stored unless it is None)."""
        hit = await self.get(key)
        if hit is not None:
            return hit
        value = await load()
        if value is not None:
            await self.set(key, value)
        return value

    async def invalidate(self, *keys: str) -> None:
        if self.redis is None or not keys:
            return
        try:
            await self._redis(lambda: self.redis.delete(*keys))
        except Exception:
            log.warning("cache invalidation failed for %s", keys)

    async def invalidate_prefix(self, prefix: str) -> None:
        """Drop every key starting with ``prefix`` (SCAN, never KEYS)."""
        if self.redis is None:
            return
        try:

            async def drop() -> None:
                batch = [k async for k in self.redis.scan_iter(match=f"{prefix}*", count=500)]
                if batch:
                    await self.redis.delete(*batch)

            await self._redis(drop)
        except Exception:
            log.warning("cache prefix invalidation failed for %s", prefix)
