"""Issue 21's bounds: each abuse is a clear 4xx, never a 500 or an unbounded accept.

Against a real phase-1 service on the session's stack: a cart beyond Stripe's cap, an
anonymous rate limit that spoofed ``X-Forwarded-For`` must not bypass, oversized or
too many headers, a user deleted while their identity is cached; and the Stripe mock
refusing an amount above Stripe's cap, as Stripe does.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from marketplace.limits import MAX_HEADER_BYTES, MAX_HEADERS
from tests.marketplace.conftest import Service, World, start_service

pytestmark = pytest.mark.services


def expensive_product(svc: Service, price: str) -> int:
    with svc.world.connect("phase1") as conn:
        farm = conn.execute("SELECT id FROM farm_profiles ORDER BY id LIMIT 1").fetchone()["id"]
        return conn.execute(
            "INSERT INTO products (farm_profile_id, name, category, price, stock_quantity)"
            " VALUES (%s, %s, 'dairy', %s, 100000) RETURNING id",
            (farm, f"truffle {uuid.uuid4().hex[:6]}", price),
        ).fetchone()["id"]


def test_cart_beyond_the_stripe_cap_is_400_and_takes_nothing(phase1: Service) -> None:
    product = expensive_product(phase1, "100000.00")
    _, auth = phase1.consumer()
    with phase1.client() as c:
        add = c.post("/cart/items", json={"product_id": product, "quantity": 1000}, headers=auth)
        assert add.status_code == 201, add.text
        r = c.post("/checkout", json={}, headers=auth)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "amount_too_large"
        assert c.get("/cart", headers=auth).json()["items"][0]["quantity"] == 1000
    with phase1.world.connect("phase1") as conn:
        stock = conn.execute("SELECT stock_quantity FROM products WHERE id = %s", (product,))
        assert stock.fetchone()["stock_quantity"] == 100000  # rolled back


def test_stripe_mock_refuses_amounts_above_the_cap(world: World) -> None:
    url = world.urls["stripe"] + "/v1/payment_intents"
    auth = ("sk_test_loadgate", "")
    big = httpx.post(url, data={"amount": "100000000", "currency": "eur"}, auth=auth, timeout=10)
    assert big.status_code == 400, big.text
    assert big.json()["error"]["code"] == "amount_too_large"
    ok = httpx.post(url, data={"amount": "99999999", "currency": "eur"}, auth=auth, timeout=10)
    assert ok.status_code == 200, ok.text


@pytest.fixture(scope="module")
def limited(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """phase1 with a 20/min limit on its own Redis database (other tests keep theirs)."""
    svc = start_service(
        world,
        "phase1",
        Path(tmp_path_factory.mktemp("limited")),
        {
            "LOADGATE_RATE_LIMIT_PER_MIN": "20",
            "LOADGATE_REDIS_URL": world.urls["redis"].rstrip("/").rsplit("/", 1)[0] + "/7"
            if world.urls["redis"].count("/") > 2
            else world.urls["redis"] + "/7",
        },
    )
    try:
        yield svc
    finally:
        os.killpg(svc.proc.pid, signal.SIGTERM)
        svc.proc.wait(timeout=15)


def test_spoofed_forwarded_for_does_not_bypass_the_anonymous_limit(limited: Service) -> None:
    codes = [
        httpx.get(
            limited.base + "/products",
            headers={"X-Forwarded-For": f"10.{i // 250}.{i % 250}.7"},
            timeout=10,
        ).status_code
        for i in range(30)
    ]
    assert codes.count(429) >= 10, codes  # one key (the real peer), not 30


def test_oversized_or_too_many_headers_are_431(phase1: Service) -> None:
    with phase1.client() as c:
        big = c.get("/products", headers={"X-Padding": "a" * (MAX_HEADER_BYTES + 1)})
        assert big.status_code == 431 and big.json()["error"]["code"] == "headers_too_large"
        many = c.get("/products", headers={f"X-H{i}": "1" for i in range(MAX_HEADERS + 1)})
        assert many.status_code == 431
        assert c.get("/products", headers={"X-Padding": "a" * 2000}).status_code == 200


def test_user_deleted_while_cached_is_404_not_500(phase1: Service) -> None:
    pid, auth = phase1.consumer()
    product = phase1.world.product_ids("phase1")[0]
    with phase1.client() as c:
        for _ in range(4):  # both workers learn the identity (5-minute cache)
            assert c.get("/cart", headers=auth).status_code == 200
        with phase1.world.connect("phase1") as conn:
            conn.execute("DELETE FROM carts WHERE consumer_id = %s", (pid,))
            conn.execute("DELETE FROM profiles WHERE id = %s", (pid,))
        for _ in range(4):
            r = c.post("/cart/items", json={"product_id": product}, headers=auth)
            assert r.status_code in (401, 404), r.text
