"""Readiness probes: one cheap real request per service, run from the host.

A probe returns when the service answers the way a client needs it to, and
raises otherwise; providers poll it until it passes or the service's
readiness timeout runs out. A probe that only checked for an open port would
let a Postgres still running initdb, or an OSRM still loading its map, count
as ready.
"""

from __future__ import annotations

import threading

import httpx
import psycopg
import redis

_http_client: httpx.Client | None = None
_http_lock = threading.Lock()


def _http() -> httpx.Client:
    """One HTTP client for every probe of the process.

    ``httpx.get`` builds a client, and with it an SSL context that loads the whole CA
    bundle, on every call: with three HTTP services probed once a second during a run,
    that was a third of the harness's CPU (issue 10). Keep-alive is off, so each probe
    still opens a fresh connection, as a new client of the service would.
    """
    global _http_client
    with _http_lock:
        if _http_client is None:
            _http_client = httpx.Client(timeout=2, limits=httpx.Limits(max_keepalive_connections=0))
        return _http_client


def probe_postgres(dsn: str) -> None:
    """A real query; works through PgBouncer too (no prepared statements)."""
    with psycopg.connect(dsn, connect_timeout=2, prepare_threshold=None) as conn:
        conn.execute("SELECT 1").fetchone()


def probe_postgres_standby(dsn: str) -> None:
    """The replica is ready once it accepts queries *as a standby*."""
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if not row or row[0] is not True:
            raise RuntimeError("replica answers but is not in recovery (not a standby)")


def probe_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        if not client.ping():
            raise RuntimeError("redis did not answer PING")
    finally:
        client.close()


def probe_osrm(url: str) -> None:
    """osrm-routed answers JSON with a ``code`` once its map is loaded."""
    response = _http().get(f"{url}/nearest/v1/driving/0,0")
    if "code" not in response.json():
        raise RuntimeError(f"unexpected OSRM answer: {response.text[:200]}")


def probe_http_ok(url: str) -> None:
    response = _http().get(url)
    response.raise_for_status()
