"""phase0: direct connections capped at 15, DB-table rate limiting, no indexes, no pages.

The cap is the seed's wall as Postgres would enforce it: the service's role has
``CONNECTION LIMIT 15``, so the 15th connection is granted and the 16th refused,
whichever worker asks.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import threading
import time

import httpx
import psycopg
import pytest

from marketplace.db import edge_url
from marketplace.profiles import EDGE_ROLE
from tests.marketplace.conftest import Service, metric_value

pytestmark = pytest.mark.services


def test_unpaginated_catalogue_and_db_rate_limit_rows(phase0: Service) -> None:
    _, auth = phase0.consumer()
    with phase0.world.connect("phase0") as conn:
        before = conn.execute("SELECT count(*) AS n FROM rate_limits").fetchone()["n"]
        with phase0.client() as c:
            body = c.get("/products", headers=auth).json()
            c.get("/cart", headers=auth)
        after = conn.execute("SELECT count(*) AS n FROM rate_limits").fetchone()["n"]
    assert len(body["products"]) == 60 and body["next_cursor"] is None
    assert after - before == 2  # one row written per request
    text = phase0.metrics()
    assert metric_value(text, "marketplace_rate_limit_decisions_total", backend="db_table") >= 2


def test_no_scaling_indexes(phase0: Service) -> None:
    with phase0.world.connect("phase0") as conn:
        names = {r["indexname"] for r in conn.execute("SELECT indexname FROM pg_indexes")}
    assert "idx_orders_batch_assignment" not in names
    assert "idx_credits_ledger_balance" not in names


def test_synchronous_batch_generation_and_checkout(phase0: Service) -> None:
    date = dt.date.today() + dt.timedelta(days=302)  # within the accepted window
    products = phase0.world.product_ids("phase0")
    with phase0.client() as c:
        for i in range(3):
            _, auth = phase0.consumer()
            c.post("/cart/items", json={"product_id": products[i], "quantity": 1}, headers=auth)
            assert (
                c.post("/checkout", json={"delivery_date": str(date)}, headers=auth).status_code
                == 201
            )
        _, admin = phase0.user("admin")
        r = c.post("/admin/batches/generate", json={"delivery_date": str(date)}, headers=admin)
    assert r.status_code == 200 and r.json()["orders_batched"] == 3
    # OSRM answered (points are on the Helsinki map) or the fallback did
    assert set(r.json()["route_methods"]) <= {"osrm_trip", "haversine"}


def server_connections(phase0: Service) -> int:
    with phase0.world.connect("phase0") as conn:
        return conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = %s", (EDGE_ROLE,)
        ).fetchone()["n"]


def test_the_role_admits_exactly_15_connections(phase0: Service) -> None:
    """Postgres itself grants the 15th connection of the role and refuses the 16th."""
    url = edge_url(phase0.world.db_url("phase0"))
    with phase0.world.connect("phase0") as conn:
        limit = conn.execute(
            "SELECT rolconnlimit, rolsuper FROM pg_roles WHERE rolname = %s", (EDGE_ROLE,)
        ).fetchone()
    assert limit == {"rolconnlimit": 15, "rolsuper": False}
    held: list[psycopg.Connection] = []
    try:
        for _ in range(20):
            if server_connections(phase0) >= 15:
                break
            held.append(psycopg.connect(url, autocommit=True))
        assert server_connections(phase0) == 15  # the 15th was granted
        with pytest.raises(psycopg.OperationalError, match="too many connections for role"):
            psycopg.connect(url, autocommit=True).close()
    finally:
        for conn in held:
            conn.close()


def test_connection_cap_surfaces_503_when_exhausted(phase0: Service) -> None:
    """Hold a lock so requests keep their connections; the 16th cannot get one."""
    _, auth = phase0.consumer()
    peak = 0
    with phase0.world.connect("phase0") as locker:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        stop = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, server_connections(phase0))
                stop.wait(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with cf.ThreadPoolExecutor(40) as pool:
            futures = [
                pool.submit(httpx.get, phase0.base + "/products", headers=auth, timeout=30)
                for _ in range(40)
            ]
            # requests stuck behind the lock keep their connections; the rest time out
            cf.wait(futures, timeout=5, return_when=cf.FIRST_COMPLETED)
            time.sleep(1.5)
            locker.execute("ROLLBACK")
            results = [f.result() for f in futures]
        stop.set()
        watcher.join()
    codes = [r.status_code for r in results]
    assert 503 in codes and 200 in codes, codes
    err = next(r for r in results if r.status_code == 503).json()
    assert err["error"]["code"] == "db_unavailable"
    assert peak == 15  # the whole cap was in use (not 15 // workers), and no more
    text = phase0.metrics()
    assert metric_value(text, "marketplace_db_connection_errors_total", pool="primary") >= 1
    # the 16th connection was asked for and Postgres refused it
    assert metric_value(text, "marketplace_db_connection_errors_total", kind="refused") >= 1
