"""phase2: Redis cache (§4.2 keys/TTLs), replica reads, arq jobs, Stripe customer cache."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest
import redis

from tests.marketplace.conftest import Service, metric_value

pytestmark = pytest.mark.services


def rds(svc: Service) -> redis.Redis:
    return redis.Redis.from_url(svc.world.urls["redis"])


def test_repeated_product_reads_come_from_redis(phase2: Service) -> None:
    product = phase2.world.product_ids("phase2")[7]
    before = metric_value(
        phase2.metrics(), "marketplace_cache_requests_total", family="product", result="hit"
    )
    with phase2.client() as c:
        first = c.get(f"/products/{product}").json()
        for _ in range(5):
            assert c.get(f"/products/{product}").json() == first
        c.get("/products")
        c.get("/products")
    r = rds(phase2)
    assert 0 < r.ttl(f"product:{product}") <= 300
    assert 0 < r.ttl("products:available") <= 120
    after = metric_value(
        phase2.metrics(), "marketplace_cache_requests_total", family="product", result="hit"
    )
    assert after - before >= 5


def test_product_update_invalidates_cache(phase2: Service) -> None:
    with phase2.world.connect("phase2") as conn:
        row = conn.execute(
            "SELECT p.id, f.profile_id FROM products p"
            " JOIN farm_profiles f ON f.id = p.farm_profile_id ORDER BY p.id LIMIT 1 OFFSET 8"
        ).fetchone()
    from tests.marketplace.conftest import token

    farmer = token(row["profile_id"], "farmer")
    with phase2.client() as c:
        c.get(f"/products/{row['id']}")
        assert (
            c.patch(
                f"/farmer/products/{row['id']}", json={"price": "9.99"}, headers=farmer
            ).status_code
            == 200
        )
        assert rds(phase2).get(f"product:{row['id']}") is None
        deadline = time.monotonic() + 5  # the replica may lag a moment behind the update
        while (
            c.get(f"/products/{row['id']}").json()["price"] != 9.99 and time.monotonic() < deadline
        ):
            rds(phase2).delete(f"product:{row['id']}")
            time.sleep(0.1)
        assert c.get(f"/products/{row['id']}").json()["price"] == 9.99


def test_reads_go_to_replica_and_read_after_write_to_primary(phase2: Service) -> None:
    _, auth = phase2.consumer()
    products = phase2.world.product_ids("phase2")
    with phase2.client() as c:
        for _ in range(5):
            c.get("/products/search", params={"q": "item"})
        assert (
            c.post(
                "/cart/items", json={"product_id": products[20], "quantity": 2}, headers=auth
            ).status_code
            == 201
        )
        cart = c.get("/cart", headers=auth).json()  # immediately: must see its own write
    assert [i["product_id"] for i in cart["items"]] == [products[20]]
    text = phase2.metrics()
    assert metric_value(text, "marketplace_db_pool_acquire_seconds_count", pool="replica") >= 5
    with httpx.Client():
        import psycopg

        with psycopg.connect(phase2.world.urls["replica"], autocommit=True) as conn:
            n = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'loadgate-marketplace'"
            ).fetchone()[0]
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
    assert n >= 1


def wait_job(c: httpx.Client, admin: dict, job_id: str) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = c.get(f"/admin/jobs/{job_id}", headers=admin).json()
        if status["status"] == "complete":
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not complete: {status}")


def test_batch_generation_and_payouts_are_queued(phase2: Service) -> None:
    date = dt.date.today() + dt.timedelta(days=303)  # within the accepted window
    products = phase2.world.product_ids("phase2")
    _, admin = phase2.user("admin")
    with phase2.client() as c:
        for i in range(3):
            _, auth = phase2.consumer()
            c.post(
                "/cart/items", json={"product_id": products[30 + i], "quantity": 1}, headers=auth
            )
            assert (
                c.post("/checkout", json={"delivery_date": str(date)}, headers=auth).status_code
                == 201
            )
        r = c.post("/admin/batches/generate", json={"delivery_date": str(date)}, headers=admin)
        assert r.status_code == 202 and r.json()["status"] == "queued"
        result = wait_job(c, admin, r.json()["job_id"])
        assert result["success"] and result["result"]["orders_batched"] == 3
        with phase2.world.connect("phase2") as conn:
            farmer_id = conn.execute(
                "SELECT f.profile_id FROM products p"
                " JOIN farm_profiles f ON f.id = p.farm_profile_id WHERE p.id = %s",
                (products[30],),
            ).fetchone()["profile_id"]
        from tests.marketplace.conftest import token

        farmer = token(farmer_id, "farmer")
        r = c.post("/payouts", headers=farmer)
        assert r.status_code == 202, r.text
        wait_job(c, admin, r.json()["job_id"])
        paid = c.get("/payouts", headers=farmer).json()["payouts"][0]
        assert paid["status"] == "paid" and paid["stripe_payout_id"].startswith("po_")
    text = phase2.metrics()
    assert metric_value(text, "marketplace_queue_jobs_completed_total", queue="batches") >= 1


def test_stripe_customer_is_cached(phase2: Service) -> None:
    pid, auth = phase2.consumer()
    products = phase2.world.product_ids("phase2")
    with phase2.client() as c:
        c.post("/cart/items", json={"product_id": products[40], "quantity": 1}, headers=auth)
        assert c.post("/checkout", json={}, headers=auth).status_code == 201
        lookups = metric_value(
            phase2.metrics(), "marketplace_external_calls_total", operation="customers.list"
        )
        c.post("/cart/items", json={"product_id": products[41], "quantity": 1}, headers=auth)
        assert c.post("/checkout", json={}, headers=auth).status_code == 201
    assert (
        metric_value(
            phase2.metrics(), "marketplace_external_calls_total", operation="customers.list"
        )
        == lookups
    )
    with phase2.world.connect("phase2") as conn:
        row = conn.execute(
            "SELECT email, stripe_customer_id FROM profiles WHERE id = %s", (pid,)
        ).fetchone()
    assert row["stripe_customer_id"].startswith("cus_")
    assert (
        rds(phase2).get(f"stripe:customer:{row['email']}").decode().strip('"')
        == row["stripe_customer_id"]
    )


def test_job_completion_is_measured_from_the_queue_counters(phase2: Service) -> None:
    """Jobs enqueued in a window, sampled like a run samples the service, then judged."""
    import pandas as pd

    from analysis.jobs import job_completion
    from loadgate.samplers.service_metrics import PrometheusSampler
    from runformat.records import now_us

    sampler = PrometheusSampler(phase2.base + "/metrics")
    rows: list[tuple] = []

    def sample() -> int:
        ts = now_us()
        rows.extend((ts, *row) for row in sampler.sample())
        return ts

    _, admin = phase2.user("admin")
    start = sample()
    with phase2.client() as c:
        for day in range(3):
            date = dt.date.today() + dt.timedelta(days=310 + day)  # within the accepted window
            r = c.post("/admin/batches/generate", json={"delivery_date": str(date)}, headers=admin)
            assert r.status_code == 202
        sample()
        end = sample()
        deadline = time.monotonic() + 30
        grace_s = 4.0
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if sample() > end + grace_s * 1e6 + 1e6:
                break
    run = type("Run", (), {"samples": pd.DataFrame(rows, columns=SAMPLE_COLUMNS)})()
    rate, ci, detail = job_completion(run, start, end + 1, grace_s=grace_s)
    assert rate == 1.0, detail
    assert ci is not None and ci[1] == 1.0
    assert "batches 3/3" in detail, detail
    counts = rds(phase2).hgetall("marketplace:jobs:counts")
    assert int(counts[b"batches:enqueued"]) >= 3
    assert int(counts[b"batches:completed"]) >= 3


SAMPLE_COLUMNS = ["ts_us", "source", "metric", "value", "labels"]
