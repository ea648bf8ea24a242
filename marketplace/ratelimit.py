"""Per-user rate limiting, the two designs the seed compares (§3.2).

- ``db_table`` (phase0): delete expired rows, count, insert -- three DB operations
  on every request, which is exactly the write load the seed wants gone.
- ``redis_sliding_window`` (phase1+): the seed's sorted-set pipeline
  (ZREMRANGEBYSCORE, ZCARD, ZADD, EXPIRE) -- zero DB writes.

Both answer the same question: may this key make one more request in the window?

Redis unavailable (phase3, :class:`FallbackLimiter`): the check falls back to the same
sliding window kept in each worker's memory. Our choice, the seed being silent: failing
closed would turn a Redis outage into a total one (every request a 429/503), failing
wide open would drop abuse protection; the in-process window keeps the per-user limit
per worker (a user spread over N workers gets at most N times it) until Redis answers
again. Before phase3 there is no fallback: a Redis error is a 500, the cascade the
seed's §5.5 is about.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from marketplace import metrics
from marketplace.errors import ApiError

WINDOW_S = 60


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0


class DbTableLimiter:
    """Seed phase0: the ``rate_limits`` table, 3 statements per check."""

    backend = "db_table"

    def __init__(self, db: Any, limit: int, window_s: int = WINDOW_S) -> None:
        self.db, self.limit, self.window_s = db, limit, window_s

    async def check(self, key: str) -> Decision:
        async with self.db.write() as conn:
            await conn.execute(
                "DELETE FROM rate_limits WHERE key = %s"
                " AND created_at < now() - make_interval(secs => %s)",
                (key, self.window_s),
            )
            cur = await conn.execute("SELECT count(*) AS n FROM rate_limits WHERE key = %s", (key,))
            count = (await cur.fetchone())["n"]
            if count >= self.limit:
                return Decision(False, self.window_s)
            await conn.execute("INSERT INTO rate_limits (key) VALUES (%s)", (key,))
        return Decision(True)


class RedisSlidingWindowLimiter:
    """Seed phase1: a sorted set of request timestamps per key."""

    backend = "redis_sliding_window"

    def __init__(self, redis: Any, limit: int, window_s: int = WINDOW_S) -> None:
        self.redis, self.limit, self.window_s = redis, limit, window_s

    async def check(self, key: str) -> Decision:
        now_ms = int(time.time() * 1000)
        rkey = f"ratelimit:{key}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.zremrangebyscore(rkey, 0, now_ms - self.window_s * 1000)
        pipe.zcard(rkey)
        pipe.zadd(rkey, {f"{now_ms}:{uuid.uuid4().hex}": now_ms})
        pipe.expire(rkey, self.window_s)
        results = await pipe.execute()
        if int(results[1]) >= self.limit:
            return Decision(False, self.window_s)
        return Decision(True)


class MemorySlidingWindowLimiter:
    """The sliding window in this worker's memory: the fallback while Redis is down."""

    backend = "memory_fallback"

    def __init__(self, limit: int, window_s: int = WINDOW_S) -> None:
        self.limit, self.window_s = limit, window_s
        self.hits: dict[str, deque[float]] = defaultdict(deque)

    async def check(self, key: str) -> Decision:
        now = time.monotonic()
        hits = self.hits[key]
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return Decision(False, self.window_s)
        hits.append(now)
        if len(self.hits) > 100_000:  # bound memory over a long outage: drop idle keys
            for idle in [k for k, v in self.hits.items() if not v][:50_000]:
                del self.hits[idle]
        return Decision(True)


class FallbackLimiter:
    """Redis first, through its breaker; the in-memory window when Redis fails or the
    breaker is open (counted in ``marketplace_redis_fallbacks_total{part="ratelimit"}``)."""

    def __init__(self, primary: RedisSlidingWindowLimiter, breakers: Any) -> None:
        self.primary = primary
        self.fallback = MemorySlidingWindowLimiter(primary.limit, primary.window_s)
        self.breakers = breakers
        self.backend = primary.backend

    async def check(self, key: str) -> Decision:
        try:
            return await self.breakers.call("redis", lambda: self.primary.check(key))
        except Exception:
            metrics.REDIS_FALLBACKS.labels("ratelimit").inc()
            return await self.fallback.check(key)


async def enforce(limiter: Any, key: str) -> None:
    """Check one request; raise 429 when over the limit. Records decision and latency."""
    start = time.perf_counter()
    try:
        decision = await limiter.check(key)
    finally:
        metrics.RATE_LIMIT_LATENCY.labels(limiter.backend).observe(time.perf_counter() - start)
    metrics.RATE_LIMIT_DECISIONS.labels(
        limiter.backend, "allowed" if decision.allowed else "limited"
    ).inc()
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            "too many requests",
            {"Retry-After": str(decision.retry_after_s)},
        )
