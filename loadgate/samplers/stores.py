"""The data stores from their own statistics: Postgres, PgBouncer's admin console, Redis.

Connections by state, pools with clients waiting, transactions, statements and cache
hits: what says a store (not the service) is where a step got slow. Each sampler holds
one connection for the run and opens it again after its store restarts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
import redis

from loadgate.samplers.loop import Row, encode_labels
from runformat.metrics import (
    CONNECTIONS,
    CONNECTIONS_TOTAL,
    DEADLOCKS_TOTAL,
    LOCKS_WAITING,
    MAX_CONNECTIONS,
    POOL_COLUMNS,
    POOL_SIZE,
    REDIS_METRICS,
    STATEMENT_METRICS,
    STATS_COLUMNS,
    XACT_TOTAL,
)


@dataclass
class PostgresSampler:
    """Connections by state vs max_connections, transactions, lock waits."""

    dsn: str
    name: str = "postgres"
    _conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=2, application_name="loadgate-sampler"
            )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def sample(self) -> Iterable[Row]:
        conn = self._connection()
        rows: list[Row] = []
        states = conn.execute(
            "SELECT coalesce(state, 'background'), count(*) FROM pg_stat_activity "
            "WHERE application_name <> 'loadgate-sampler' GROUP BY 1"
        ).fetchall()
        total = 0
        for state, count in states:
            rows.append((self.name, CONNECTIONS, float(count), encode_labels(state=state)))
            total += count
        rows.append((self.name, CONNECTIONS_TOTAL, float(total), ""))
        (max_conn,) = conn.execute("SHOW max_connections").fetchone()  # type: ignore[misc]
        rows.append((self.name, MAX_CONNECTIONS, float(max_conn), ""))
        xacts = conn.execute(
            "SELECT sum(xact_commit + xact_rollback), sum(deadlocks) FROM pg_stat_database"
        ).fetchone()
        rows.append((self.name, XACT_TOTAL, float(xacts[0] or 0), ""))  # type: ignore[index]
        rows.append((self.name, DEADLOCKS_TOTAL, float(xacts[1] or 0), ""))  # type: ignore[index]
        (waiting,) = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()  # type: ignore[misc]
        rows.append((self.name, LOCKS_WAITING, float(waiting), ""))
        return rows + self._statements(conn)

    def _statements(self, conn: psycopg.Connection) -> list[Row]:
        """Statements executed (running totals from pg_stat_statements), those on the
        rate-limit table apart: §3.2's "3 DB operations per request" is then measured,
        not assumed. Nothing when the extension is absent (e.g. a foreign database)."""
        try:
            counts = conn.execute(STATEMENT_COUNTS).fetchone()
        except psycopg.Error:
            return []
        return [
            (self.name, n, float(v or 0), "")
            for n, v in zip(STATEMENT_METRICS, counts or (), strict=True)
        ]


STATEMENT_COUNTS = (
    "SELECT sum(calls),"
    " sum(calls) FILTER (WHERE query ILIKE '%rate_limits%'),"
    " sum(calls) FILTER (WHERE query ILIKE '%rate_limits%'"
    " AND (query ILIKE 'insert%' OR query ILIKE 'delete%'))"
    " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
    " WHERE datname = current_database()) AND query NOT ILIKE '%pg_stat_statements%'"
)
"""Statement calls of this database: all, on ``rate_limits``, and writes to it (this
query names the table too: queries reading pg_stat_statements are left out)."""


@dataclass
class PgBouncerSampler:
    """SHOW POOLS / SHOW STATS from PgBouncer's admin console.

    One admin connection for the run, opened again after PgBouncer restarts (a login a
    second was a cost of the harness, not of the stack). Admin-console clients are not
    in the ``blueharvests`` pool, so they change none of its numbers.
    """

    dsn: str
    name: str = "pgbouncer"
    database: str = "blueharvests"
    _conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            admin = self.dsn.rsplit("/", 1)[0] + "/pgbouncer"
            self._conn = psycopg.connect(
                admin, autocommit=True, prepare_threshold=None, connect_timeout=2
            )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def sample(self) -> Iterable[Row]:
        rows: list[Row] = []
        conn = self._connection()
        try:
            cur = conn.execute("SHOW POOLS")
            names = [c.name for c in cur.description or []]
            for record in cur.fetchall():
                pool = dict(zip(names, record, strict=True))
                if pool.get("database") != self.database:
                    continue
                for column in POOL_COLUMNS:
                    rows.append(
                        (
                            self.name,
                            column,
                            float(pool.get(column) or 0),
                            encode_labels(user=pool.get("user")),
                        )
                    )
            cur = conn.execute("SHOW DATABASES")
            names = [c.name for c in cur.description or []]
            for record in cur.fetchall():
                database = dict(zip(names, record, strict=True))
                if database.get("name") == self.database:
                    rows.append((self.name, POOL_SIZE, float(database.get("pool_size") or 0), ""))
            cur = conn.execute("SHOW STATS")
            names = [c.name for c in cur.description or []]
            for record in cur.fetchall():
                stats = dict(zip(names, record, strict=True))
                if stats.get("database") == self.database:
                    for column in STATS_COLUMNS:
                        rows.append((self.name, column, float(stats.get(column) or 0), ""))
        except psycopg.Error:
            conn.close()  # PgBouncer went away: connect again on the next tick
            raise
        return rows


@dataclass
class RedisSampler:
    url: str
    name: str = "redis"
    _client: redis.Redis | None = None

    def sample(self) -> Iterable[Row]:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_timeout=2)
        info = self._client.info()
        return [(self.name, m, float(info.get(m, 0)), "") for m in REDIS_METRICS]
