"""Postgres access: pools per profile, read/write routing, metrics, 503 on exhaustion.

- phase0: direct connections to the primary as the role ``edge_functions``, whose
  ``CONNECTION LIMIT 15`` (migration 0006) is the seed's wall: Postgres refuses the
  16th connection whichever worker asks. A refused connection is counted
  (``kind="refused"``); a request that gets no connection within
  ``db_acquire_timeout_s`` answers 503.
- phase1+: through PgBouncer in transaction mode with the seed's §3.1 numbers, so
  server-side prepared statements are off (``prepare_threshold=None``).
- phase2+: reads go to the streaming replica unless the caller wrote within the last
  ``read_after_write_s`` seconds (tracked in Redis so every worker sees it).

Connections are in autocommit mode. ``read()`` runs each statement as its own
transaction, so behind PgBouncer a server connection is held only while a statement
runs -- never while the coroutine waits for its turn on a busy event loop (the seed's
edge functions, through PostgREST, also make one transaction per call).
``write()`` opens a transaction at once (``BEGIN`` is sent when the block starts, so
the proxy assigns its server then and the acquisition histogram includes that wait)
and commits when the block ends.

Two histograms show where the time goes: ``marketplace_db_pool_acquire_seconds``
(request start to a usable connection; the seed promises < 50 ms, §3.1) and
``marketplace_db_connection_hold_seconds`` (how long a request keeps it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout, TooManyRequests

from marketplace import metrics
from marketplace.config import Settings
from marketplace.errors import DbUnavailable
from marketplace.profiles import EDGE_ROLE, Profile

log = logging.getLogger("marketplace.db")

APPLICATION_NAME = "loadgate-marketplace"
EDGE_PASSWORD = "edge_functions"
"""Password of :data:`EDGE_ROLE` (set by migration 0006; a local test database)."""


def edge_url(database_url: str) -> str:
    """The primary's DSN with the phase0 role (user and password replaced)."""
    return make_conninfo(database_url, user=EDGE_ROLE, password=EDGE_PASSWORD)


def _counting_connection_class(pool_name: str) -> type[psycopg.AsyncConnection]:
    """A connection class that counts refused connects (e.g. the role's limit)."""

    class CountingConnection(psycopg.AsyncConnection):  # type: ignore[type-arg]
        @classmethod
        async def connect(cls, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            try:
                return await super().connect(*args, **kwargs)
            except psycopg.OperationalError:
                metrics.DB_CONNECTION_ERRORS.labels(pool_name, "refused").inc()
                raise

    return CountingConnection


class Pool:
    """One psycopg pool plus the metrics the scaling story needs."""

    def __init__(self, name: str, url: str, max_size: int, timeout: float, pgbouncer: bool) -> None:
        self.name = name
        self.timeout = timeout
        kwargs: dict[str, Any] = {
            "row_factory": dict_row,
            "application_name": APPLICATION_NAME,
            "autocommit": True,
        }
        if pgbouncer:
            kwargs["prepare_threshold"] = None
        self.pool = AsyncConnectionPool(
            url,
            min_size=min(2, max_size),
            max_size=max_size,
            kwargs=kwargs,
            connection_class=_counting_connection_class(name),
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
    async def connection(
        self, transaction: bool = True
    ) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
        """A connection (in a transaction if asked); exhaustion and refusals become 503."""
        mode = "transaction" if transaction else "statements"
        stack = AsyncExitStack()
        start = time.perf_counter()
        metrics.DB_POOL_WAITING.labels(self.name).inc()
        try:
            conn = await stack.enter_async_context(self.pool.connection(timeout=self.timeout))
            if transaction:
                await stack.enter_async_context(conn.transaction())
        except (PoolTimeout, TooManyRequests) as exc:
            await stack.aclose()
            metrics.DB_CONNECTION_ERRORS.labels(self.name, "pool_timeout").inc()
            raise DbUnavailable(f"no database connection within {self.timeout:g}s") from exc
        except psycopg.OperationalError as exc:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
            metrics.DB_CONNECTION_ERRORS.labels(self.name, "connect").inc()
            raise DbUnavailable("database connection failed") from exc
        finally:
            metrics.DB_POOL_WAITING.labels(self.name).dec()
        acquired = time.perf_counter()
        metrics.DB_ACQUIRE.labels(self.name).observe(acquired - start)
        metrics.DB_POOL_IN_USE.labels(self.name).inc()
        try:
            try:
                yield conn
            except BaseException as exc:
                if not await stack.__aexit__(type(exc), exc, exc.__traceback__):
                    raise
            else:
                await stack.__aexit__(None, None, None)
        except psycopg.OperationalError as exc:
            metrics.DB_CONNECTION_ERRORS.labels(self.name, "lost").inc()
            raise DbUnavailable("database connection lost") from exc
        finally:
            metrics.DB_POOL_IN_USE.labels(self.name).dec()
            metrics.DB_HOLD.labels(self.name, mode).observe(time.perf_counter() - acquired)


class Database:
    """The service's pools and the routing between them."""

    def __init__(
        self,
        settings: Settings,
        profile: Profile,
        redis: Any | None = None,
        breakers: Any | None = None,
    ) -> None:
        self.profile = profile
        self.redis = redis
        self.breakers = breakers
        """Read-after-write marks go through the Redis breaker when given (phase3)."""
        use_bouncer = profile.db_route == "pgbouncer" and settings.pgbouncer_url
        if profile.db_route == "pgbouncer" and not settings.pgbouncer_url:
            log.warning(
                "profile %s wants PgBouncer but LOADGATE_PGBOUNCER_URL is unset", profile.name
            )
        if use_bouncer:
            url = str(settings.pgbouncer_url)
        elif profile.db_connection_cap is not None:
            url = edge_url(settings.database_url)
        else:
            url = settings.database_url
        timeout = settings.db_acquire_timeout_s or profile.db_acquire_timeout_s
        size = profile.primary_pool_size(settings.workers)
        self.primary = Pool(
            "pgbouncer" if use_bouncer else "primary", url, size, timeout, bool(use_bouncer)
        )
        self.replica: Pool | None = None
        if profile.read_replica and settings.replica_url:
            # the replica endpoint is sized like the primary's proxy (seed silent, §4.1)
            self.replica = Pool("replica", settings.replica_url, size, timeout, pgbouncer=False)
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
        """A primary connection in one transaction (writes)."""
        return self.primary.connection(transaction=True)

    async def read(self, profile_id: int | None = None) -> Any:
        """A connection for reads, one transaction per statement: the replica unless
        this user wrote moments ago."""
        if self.replica is None:
            return self.primary.connection(transaction=False)
        if profile_id is not None and await self._wrote_recently(profile_id):
            return self.primary.connection(transaction=False)
        return self.replica.connection(transaction=False)

    async def note_write(self, profile_id: int) -> None:
        """Remember a write so this user's next reads see it (read-after-write)."""
        if self.replica is None or self.redis is None:
            return
        ttl_ms = int(self.profile.read_after_write_s * 1000)
        redis = self.redis
        try:
            await self._redis(lambda: redis.set(f"raw:{profile_id}", "1", px=ttl_ms))
        except Exception:  # Redis down: reads may be stale, writes still succeed
            log.warning("could not record read-after-write for %s", profile_id)

    async def _wrote_recently(self, profile_id: int) -> bool:
        redis = self.redis
        if redis is None:
            return False
        try:
            return bool(await self._redis(lambda: redis.exists(f"raw:{profile_id}")))
        except Exception:
            return True  # unsure: the primary is always correct

    async def _redis(self, call: Any) -> Any:
        return await (self.breakers.call("redis", call) if self.breakers else call())
