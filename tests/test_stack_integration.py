"""The same assertions against every provider: a real stack does real work."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time

import httpx
import psycopg
import pytest
import redis
import stripe

from stack.config import PG_MAX_CONNECTIONS, STRIPE_API_KEY
from stack.road_points import random_road_points
from tests.support import STRIPE_UNDER_TEST

pytestmark = pytest.mark.services


def test_sql_through_pgbouncer(full_stack):
    with psycopg.connect(full_stack.url("pgbouncer"), prepare_threshold=None) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS probe_items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO probe_items VALUES (1, 'carrots') ON CONFLICT DO NOTHING")
        conn.commit()
        assert conn.execute("SELECT name FROM probe_items WHERE id = 1").fetchone() == ("carrots",)
    # PgBouncer's admin console proves the traffic went through the pooler.
    admin = full_stack.url("pgbouncer").rsplit("/", 1)[0] + "/pgbouncer"
    with psycopg.connect(admin, autocommit=True, prepare_threshold=None) as conn:
        pools = conn.execute("SHOW POOLS").fetchall()
    assert any(row[0] == "blueharvests" for row in pools), pools


def test_postgres_settings(full_stack):
    with psycopg.connect(full_stack.url("postgres")) as conn:
        assert conn.execute("SHOW max_connections").fetchone() == (str(PG_MAX_CONNECTIONS),)
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()


def test_replica_streams_from_primary(full_stack):
    marker = f"m{time.time_ns()}"
    with psycopg.connect(full_stack.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS replication_probe (marker text)")
        conn.execute("INSERT INTO replication_probe VALUES (%s)", (marker,))
    with psycopg.connect(full_stack.url("replica"), autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        deadline = time.monotonic() + 10
        found = None
        while time.monotonic() < deadline and not found:
            with contextlib.suppress(psycopg.errors.UndefinedTable):
                found = conn.execute(
                    "SELECT 1 FROM replication_probe WHERE marker = %s", (marker,)
                ).fetchone()
            time.sleep(0.1)
    assert found, "the row written on the primary never reached the replica"


def test_redis_set_get(full_stack):
    client = redis.Redis.from_url(full_stack.url("redis"))
    client.set("loadgate:probe", "beets", ex=60)
    assert client.get("loadgate:probe") == b"beets"
    client.close()


def test_osrm_routes_between_snapped_points(full_stack):
    url = full_stack.url("osrm")
    points = random_road_points(url, 5, seed=7)
    coords = ";".join(f"{lon},{lat}" for lon, lat in points)
    route = httpx.get(f"{url}/route/v1/driving/{coords}", timeout=10).json()
    trip = httpx.get(f"{url}/trip/v1/driving/{coords}?roundtrip=true", timeout=10).json()
    assert route["code"] == "Ok" and route["routes"][0]["distance"] > 0
    assert trip["code"] == "Ok" and len(trip["waypoints"]) == 5


def _stripe(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_API_KEY, base_addresses={"api": url}, max_network_retries=0)


def test_stripe_payment_intent_has_seed_latency(full_stack):
    client = _stripe(full_stack.url("stripe"))
    time.sleep(1.1)  # a full token bucket, whatever ran before
    durations = []
    for _ in range(5):
        started = time.perf_counter()
        intent = client.v1.payment_intents.create(
            params={
                "amount": 1299,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
            }
        )
        durations.append((time.perf_counter() - started) * 1000)
        assert intent.status == "succeeded"
    assert min(durations) >= STRIPE_UNDER_TEST.latency_min_ms
    # Upper bound with slack for scheduling on a shared 2-core box.
    assert max(durations) <= STRIPE_UNDER_TEST.latency_max_ms + 400


def test_stripe_burst_above_limit_gets_429(full_stack):
    url = full_stack.url("stripe")
    time.sleep(1.1)
    burst = int(STRIPE_UNDER_TEST.rate_limit_per_s * 3)

    def one(_: int) -> tuple[int, dict]:
        response = httpx.get(
            f"{url}/v1/customers",
            headers={"Authorization": f"Bearer {STRIPE_API_KEY}"},
            timeout=10,
        )
        return response.status_code, response.json()

    # On a busy machine one burst can be sent slower than the bucket refills, so send
    # bursts until one is limited: bounded by count (5 bursts) and time (30 s).
    results: list[tuple[int, dict]] = []
    deadline = time.monotonic() + 30
    with concurrent.futures.ThreadPoolExecutor(max_workers=burst) as pool:
        for _ in range(5):
            results += pool.map(one, range(burst))
            if any(status == 429 for status, _ in results) or time.monotonic() > deadline:
                break
    limited = [body for status, body in results if status == 429]
    ok = [status for status, _ in results if status == 200]
    assert limited and ok, [status for status, _ in results]
    assert all(body["error"]["type"] == "rate_limit_error" for body in limited)
    # The official SDK sees Stripe's own exception type.
    client = _stripe(url)
    with (
        pytest.raises(stripe.RateLimitError),
        concurrent.futures.ThreadPoolExecutor(max_workers=burst) as pool,
    ):
        for future in [pool.submit(client.v1.customers.list) for _ in range(burst * 5)]:
            future.result()
