"""phase3: Stripe breaker and degraded checkout, matview analytics, partitioned orders."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from tests.marketplace.conftest import Service, metric_value

pytestmark = pytest.mark.services


def test_orders_are_partitioned_by_month(phase3: Service) -> None:
    pid, auth = phase3.consumer()
    products = phase3.world.product_ids("phase3")
    with phase3.client() as c:
        c.post("/cart/items", json={"product_id": products[50], "quantity": 1}, headers=auth)
        order_id = c.post("/checkout", json={}, headers=auth).json()["order_id"]
    with phase3.world.connect("phase3") as conn:
        assert (
            conn.execute(
                "SELECT count(*) AS n FROM pg_partitioned_table"
                " WHERE partrelid = 'orders'::regclass"
            ).fetchone()["n"]
            == 1
        )
        part = conn.execute(
            "SELECT tableoid::regclass::text AS p FROM orders WHERE id = %s", (order_id,)
        ).fetchone()["p"]
    assert part.startswith("orders_20")


def test_analytics_read_materialized_views(phase3: Service) -> None:
    _, admin = phase3.user("admin")
    with phase3.client() as c:
        assert c.post("/admin/analytics/refresh", headers=admin).status_code == 200
        revenue = c.get("/admin/analytics/daily-revenue", headers=admin).json()
        perf = c.get("/admin/analytics/product-performance", headers=admin).json()
    assert revenue["source"] == perf["source"] == "materialized_view"
    assert sum(d["order_count"] for d in revenue["days"]) >= 1 and perf["products"]


def test_stripe_breaker_opens_and_checkout_degrades(phase3: Service) -> None:
    products = phase3.world.product_ids("phase3")
    consumers = [phase3.consumer() for _ in range(14)]
    phase3.stripe_config(error_rate=1.0)
    try:
        results = []
        with phase3.client() as c:
            for i, (_, auth) in enumerate(consumers):
                c.post("/cart/items", json={"product_id": products[i], "quantity": 1}, headers=auth)
                results.append(c.post("/checkout", json={}, headers=auth))
        assert all(r.status_code == 202 for r in results), [r.text for r in results]
        assert all(r.json()["status"] == "payment_pending" for r in results)
        text = phase3.metrics()
        assert metric_value(text, "marketplace_circuit_breaker_state", breaker="stripe") == 2
        assert metric_value(text, "marketplace_checkouts_total", outcome="payment_deferred") >= 14
    finally:
        phase3.stripe_config(error_rate=0.0)
    # once Stripe answers again the queued retries charge every deferred order exactly once
    order_ids = [r.json()["order_id"] for r in results]
    deadline = time.monotonic() + 45
    with phase3.world.connect("phase3") as conn:
        while time.monotonic() < deadline:
            statuses = {
                r["status"]
                for r in conn.execute("SELECT status FROM orders WHERE id = ANY(%s)", (order_ids,))
            }
            if statuses == {"paid"}:
                break
            time.sleep(0.5)
    assert statuses == {"paid"}


def test_osrm_failure_falls_back_to_haversine(phase3: Service) -> None:
    import asyncio

    from marketplace.breakers import Breakers
    from marketplace.routing import Router

    async def run() -> tuple[str, str]:
        breakers = Breakers(enabled=True)
        dead = Router("http://127.0.0.1:9", breakers)  # nothing listens there
        points = [(24.9384, 60.1699), (24.9458, 60.1675)]  # routable from the depot
        for _ in range(3):
            route = await dead.route(points)
        state = await breakers.state("osrm")
        live = await Router(phase3.world.urls["osrm"], Breakers(enabled=True)).route(points)
        await dead.close()
        assert sorted(route.order) == [0, 1]
        return route.method + "/" + state, live.method

    fallback, live = asyncio.run(run())
    assert fallback == "haversine/opened"
    assert live == "osrm_trip"


def _paid_order_farmer(svc: Service) -> dict[str, str]:
    """A farmer with an available balance: one consumer's paid order of their product."""
    from tests.marketplace.conftest import token

    products = svc.world.product_ids("phase3")
    _, auth = svc.consumer()
    with svc.client() as c:
        c.post("/cart/items", json={"product_id": products[-2], "quantity": 1}, headers=auth)
        r = c.post("/checkout", json={}, headers=auth)
        assert r.status_code == 201, r.text
    with svc.world.connect("phase3") as conn:
        farmer_id = conn.execute(
            "SELECT f.profile_id FROM products p"
            " JOIN farm_profiles f ON f.id = p.farm_profile_id WHERE p.id = %s",
            (products[-2],),
        ).fetchone()["profile_id"]
    return token(farmer_id, "farmer")


def test_queue_down_defers_payouts_and_refuses_batches(services: Any, tmp_path: Path) -> None:
    """Redis frozen (a phase-3 fault): a payout is recorded and answered 202 "deferred",
    batch generation 503 with Retry-After -- never a 500 -- and once Redis answers again
    the reconciler queues the deferred payout, which is then paid."""
    import os
    import signal
    import subprocess

    from tests.marketplace.conftest import free_port, start_service

    port = free_port()
    redis_proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    svc = None
    try:
        world = services("phase3").world
        svc = start_service(
            world, "phase3", tmp_path, {"LOADGATE_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        )
        farmer = _paid_order_farmer(svc)
        _, admin = svc.user("admin")
        os.kill(redis_proc.pid, signal.SIGSTOP)
        try:
            with svc.client() as c:
                payout = c.post("/payouts", headers=farmer)
                batches = c.post(
                    "/admin/batches/generate",
                    json={"delivery_date": str(dt.date.today())},
                    headers=admin,
                )
        finally:
            os.kill(redis_proc.pid, signal.SIGCONT)
        assert payout.status_code == 202 and payout.json()["status"] == "deferred", payout.text
        assert batches.status_code == 503, batches.text
        assert batches.json()["error"]["code"] == "queue_unavailable"
        assert batches.headers["Retry-After"] == "5"
        payout_id = payout.json()["id"]
        # reconciler: every 15 s, for payouts older than the payout delay (1 s) + 30 s
        deadline = time.monotonic() + 90
        with world.connect("phase3") as conn:
            while time.monotonic() < deadline:
                status = conn.execute(
                    "SELECT status FROM payouts WHERE id = %s", (payout_id,)
                ).fetchone()["status"]
                if status == "paid":
                    break
                time.sleep(1)
        assert status == "paid", svc.log_path.read_text()[-2000:]
    finally:
        if svc is not None:
            os.killpg(svc.proc.pid, signal.SIGTERM)
            svc.proc.wait(timeout=15)
        redis_proc.kill()
        redis_proc.wait()
