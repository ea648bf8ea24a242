"""Postgres access: pools per profile, read/write routing, metrics, 503 on exhaustion.

- phase0: direct connections to the primary, hard-capped at 15 across all workers
  (each worker gets ``15 // workers``). When all are busy a request waits at most
  ``db_acquire_timeout_s`` and then gets a 503 -- the seed's connection wall made
  visible instead of an unbounded queue.
- phase1+: through PgBouncer in transaction mode, so server-side prepared statements
  are off (``prepare_threshold=None``).
- phase2+: reads go to the streaming replica unless the caller wrote within the last
  ``read_after_write_s`` seconds (tracked in Redis so every worker sees it).

Each ``async with db.write()/read()`` block is one transaction (commit on success).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout, TooManyRequests

from marketplace import metrics
from marketplace.config import Settings
from marketplace.errors import DbUnavailable
from marketplace.profiles import Profile

log = logging.getLogger("marketplace.db")

APPLICATION_NAME = "loadgate-marketplace"
DEFAULT_POOL_SIZE = 20
REPLICA_POOL_SIZE = 20


def primary_pool_size(profile: Profile, workers: int, default: int = DEFAULT_POOL_SIZE) -> int:
    """Per-worker pool size: the profile's global cap split over workers (at least 1)."""
    if profile.db_connection_cap is None:
        return default
    return max(1, profile.db_connection_cap // max(1, workers))


class Pool:
    """One psycopg pool plus the metrics the scaling story needs."""

    def __init__(self, name: str, url: str, max_size: int, timeout: float, pgbouncer: bool) -> None:
        self.name = name
        self.timeout = timeout
        kwargs: dict[str, Any] = {"row_factory": dict_row, "application_name": APPLICATION_NAME}
        if pgbouncer:
            kwargs["prepare_threshold"] = None
        self.pool = AsyncConnectionPool(
            url,
            min_size=min(2, max_size),
            max_size=max_size,
            kwargs=kwargs,
            timeout=timeout,
            open=False,
            name=f"marketplace-{name}",
            reconnect_timeout=30,
        )
        metrics.DB_POOL_SIZE.labels(name).set(max_size)

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
        """A connection in a transaction; pool exhaustion and refusals become 503."""
        start = time.perf_counter()
        metrics.DB_POOL_WAITING.labels(self.name).inc()
        try:
            cm = self.pool.connection(timeout=self.timeout)
            conn = await cm.__aenter__()
        except (PoolTimeout, TooManyRequests) as exc:
            metrics.DB_CONNECTION_ERRORS.labels(self.name, "pool_timeout").inc()
            raise DbUnavailable(f"no database connection within {self.timeout}s") from exc
        except psycopg.OperationalError as exc:
            metrics.DB_CONNECTION_ERRORS.labels(self.name, "connect").inc()
            raise DbUnavailable("database connection failed") from exc
        finally:
            metrics.DB_POOL_WAITING.labels(self.name).dec()
            metrics.DB_ACQUIRE.labels(self.name).observe(time.perf_counter() - start)
        metrics.DB_POOL_IN_USE.labels(self.name).inc()
        try:
            yield conn
        except psycopg.OperationalError as exc:
            metrics.DB_CONNECTION_ERRORS.labels(self.name, "lost").inc()
            await cm.__aexit__(type(exc), exc, exc.__traceback__)
            raise DbUnavailable("database connection lost") from exc
        except BaseException as exc:
            await cm.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        else:
            await cm.__aexit__(None, None, None)
        finally:
            metrics.DB_POOL_IN_USE.labels(self.name).dec()


class Database:
    """The service's pools and the routing between them."""

    def __init__(self, settings: Settings, profile: Profile, redis: Any | None = None) -> None:
        self.profile = profile
        self.redis = redis
        use_bouncer = profile.db_route == "pgbouncer" and settings.pgbouncer_url
        if profile.db_route == "pgbouncer" and not settings.pgbouncer_url:
            log.warning(
                "profile %s wants PgBouncer but LOADGATE_PGBOUNCER_URL is unset", profile.name
            )
        url = settings.pgbouncer_url if use_bouncer else settings.database_url
        self.primary = Pool(
            "pgbouncer" if use_bouncer else "primary",
            str(url),
            primary_pool_size(profile, settings.workers),
            settings.db_acquire_timeout_s,
            pgbouncer=bool(use_bouncer),
        )
        self.replica: Pool | None = None
        if profile.read_replica and settings.replica_url:
            self.replica = Pool(
                "replica",
                settings.replica_url,
                REPLICA_POOL_SIZE,
                settings.db_acquire_timeout_s,
                pgbouncer=False,
            )
        elif profile.read_replica:
            log.warning(
                "profile %s wants a replica but LOADGATE_REPLICA_URL is unset", profile.name
            )

    async def open(self) -> None:
        await self.primary.open()
        if self.replica:
            await self.replica.open()

    async def close(self) -> None:
        await self.primary.close()
        if self.replica:
            await self.replica.close()

    def write(self) -> Any:
        """A primary connection (writes and read-after-write)."""
        return self.primary.connection()

    async def read(self, profile_id: int | None = None) -> Any:
        """A connection for reads: the replica unless this user wrote moments ago."""
        if self.replica is None:
            return self.primary.connection()
        if profile_id is not None and await self._wrote_recently(profile_id):
            return self.primary.connection()
        return self.replica.connection()

    async def note_write(self, profile_id: int) -> None:
        """Remember a write so this user's next reads see it (read-after-write)."""
        if self.replica is None or self.redis is None:
            return
        ttl_ms = int(self.profile.read_after_write_s * 1000)
        try:
            await self.redis.set(f"raw:{profile_id}", "1", px=ttl_ms)
        except Exception:  # Redis down: reads may be stale, writes still succeed
            log.warning("could not record read-after-write for %s", profile_id)

    async def _wrote_recently(self, profile_id: int) -> bool:
        try:
            return bool(await self.redis.exists(f"raw:{profile_id}")) if self.redis else False
        except Exception:
            return True  # unsure: the primary is always correct
