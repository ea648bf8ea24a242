"""Every endpoint, auth and bad input, against the phase1 service (PgBouncer, Redis)."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt

import httpx
import pytest

from tests.marketplace.conftest import Service, metric_value, token

pytestmark = pytest.mark.services


def test_health_profile_and_openapi(phase1: Service) -> None:
    with phase1.client() as c:
        assert c.get("/health").json() == {"status": "ok", "profile": "phase1"}
        assert c.get("/profile").json()["db_route"] == "pgbouncer"
        paths = c.get("/openapi.json").json()["paths"]
    for path in (
        "/products",
        "/cart/items",
        "/checkout",
        "/orders/{order_id}",
        "/admin/batches/generate",
        "/driver/batches/{batch_id}/claim",
        "/payouts",
    ):
        assert path in paths


def test_catalogue_pages_with_cursor_and_search(phase1: Service) -> None:
    with phase1.client() as c:
        first = c.get("/products").json()
        assert len(first["products"]) == 50 and first["has_more"]
        second = c.get("/products", params={"cursor": first["next_cursor"]}).json()
        ids = [p["id"] for p in first["products"] + second["products"]]
        assert len(ids) == len(set(ids)) == 60
        detail = c.get(f"/products/{ids[0]}").json()
        assert detail["id"] == ids[0] and detail["farm_name"].startswith("Farm")
        farm = c.get(f"/farms/{detail['farm_profile_id']}").json()
        assert farm["farm_name"] == detail["farm_name"]
        dairy = c.get("/products/search", params={"category": "dairy", "limit": 100}).json()
        assert dairy["products"] and all(p["category"] == "dairy" for p in dairy["products"])
        named = c.get("/products/search", params={"q": "item 1-2"}).json()["products"]
        assert {p["name"] for p in named} >= {"dairy item 1-2"}
        by_farm = c.get("/products/search", params={"farm_id": farm["id"], "limit": 100}).json()
        assert len(by_farm["products"]) == 30
        assert c.get("/products/999999999").status_code == 404
        assert c.get("/products", params={"limit": 1000}).status_code == 422
        bad = c.get("/products", params={"cursor": "nonsense!"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"


def test_cart_add_update_remove_view(phase1: Service) -> None:
    pid, auth = phase1.consumer()
    products = phase1.world.product_ids("phase1")
    with phase1.client() as c:
        assert (
            c.post(
                "/cart/items", json={"product_id": products[0], "quantity": 2}, headers=auth
            ).status_code
            == 201
        )
        assert (
            c.post(
                "/cart/items", json={"product_id": products[0], "quantity": 1}, headers=auth
            ).json()["quantity"]
            == 3
        )
        assert (
            c.post("/cart/items", json={"product_id": products[1]}, headers=auth).status_code == 201
        )
        assert (
            c.put(f"/cart/items/{products[1]}", json={"quantity": 5}, headers=auth).json()[
                "quantity"
            ]
            == 5
        )
        cart = c.get("/cart", headers=auth).json()
        assert {i["product_id"]: i["quantity"] for i in cart["items"]} == {
            products[0]: 3,
            products[1]: 5,
        }
        assert c.delete(f"/cart/items/{products[1]}", headers=auth).status_code == 204
        assert c.delete(f"/cart/items/{products[1]}", headers=auth).status_code == 404
        assert [i["product_id"] for i in c.get("/cart", headers=auth).json()["items"]] == [
            products[0]
        ]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"product_id": 1, "quantity": -1}, 422),
        ({"product_id": 1, "quantity": 0}, 422),
        ({"product_id": "1", "quantity": 1}, 422),
        ({"product_id": 1, "quantity": 1.5}, 422),
        ({"product_id": 99999999, "quantity": 1}, 404),
        ({"product_id": 2**70, "quantity": 1}, 422),
        ({}, 422),
    ],
)
def test_cart_bad_input_is_4xx_json(phase1: Service, body: dict, status: int) -> None:
    _, auth = phase1.consumer()
    r = httpx.post(phase1.base + "/cart/items", json=body, headers=auth)
    assert r.status_code == status
    assert "code" in r.json()["error"]


def test_malformed_json_and_empty_cart(phase1: Service) -> None:
    _, auth = phase1.consumer()
    with phase1.client() as c:
        r = c.post(
            "/cart/items",
            content=b"{not json",
            headers={**auth, "content-type": "application/json"},
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        r = c.post("/checkout", json={}, headers=auth)
        assert r.status_code == 400 and r.json()["error"]["code"] == "empty_cart"
        r = c.post("/checkout", json={"delivery_date": "not-a-date"}, headers=auth)
        assert r.status_code == 422


def stripe_intent(svc: Service, intent_id: str) -> dict:
    r = httpx.get(
        svc.world.urls["stripe"] + f"/v1/payment_intents/{intent_id}", auth=("sk_test_loadgate", "")
    )
    return r.json()


def test_checkout_credits_then_stripe_and_order_history(phase1: Service) -> None:
    pid, auth = phase1.consumer(credits="5.00")
    products = phase1.world.product_ids("phase1")
    with phase1.client() as c:
        c.post("/cart/items", json={"product_id": products[3], "quantity": 2}, headers=auth)
        r = c.post("/checkout", json={}, headers=auth)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "paid" and body["credits_applied"] == 5.0
        assert body["amount_due"] == pytest.approx(body["total_amount"] - 5.0)
        pi = stripe_intent(phase1, body["payment_intent_id"])
        assert pi["status"] == "succeeded" and pi["amount"] == round(body["amount_due"] * 100)
        assert pi["metadata"]["order_id"] == str(body["order_id"])
        assert c.get("/credits", headers=auth).json()["balance"] == 0.0
        assert c.get("/cart", headers=auth).json()["items"] == []
        orders = c.get("/orders", headers=auth).json()["orders"]
        assert [o["id"] for o in orders] == [body["order_id"]]
        detail = c.get(f"/orders/{body['order_id']}", headers=auth).json()
        assert (
            detail["items"][0]["product_id"] == products[3] and detail["items"][0]["quantity"] == 2
        )
        # another consumer sees nothing of it
        _, other = phase1.consumer()
        assert c.get(f"/orders/{body['order_id']}", headers=other).status_code == 404
        assert c.get(f"/profiles/{pid}", headers=other).status_code == 403
        assert c.get(f"/profiles/{pid}", headers=auth).json()["id"] == pid


def test_checkout_paid_fully_with_credits_makes_no_charge(phase1: Service) -> None:
    _, auth = phase1.consumer(credits="500.00")
    products = phase1.world.product_ids("phase1")
    with phase1.client() as c:
        c.post("/cart/items", json={"product_id": products[4], "quantity": 1}, headers=auth)
        body = c.post("/checkout", json={}, headers=auth).json()
    assert (
        body["status"] == "paid" and body["payment_intent_id"] is None and body["amount_due"] == 0
    )


def test_concurrent_checkouts_do_not_double_spend_credits(phase1: Service) -> None:
    pid, auth = phase1.consumer(credits="10.00")
    products = phase1.world.product_ids("phase1")
    with phase1.client() as c:
        c.post("/cart/items", json={"product_id": products[5], "quantity": 3}, headers=auth)
    with cf.ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda _: httpx.post(phase1.base + "/checkout", json={}, headers=auth, timeout=30),
                range(4),
            )
        )
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) == 1 and statuses.count(400) == 3, [r.text for r in results]
    with phase1.world.connect("phase1") as conn:
        rows = conn.execute(
            "SELECT amount, balance_after FROM credits_ledger WHERE consumer_id = %s ORDER BY id",
            (pid,),
        ).fetchall()
    assert [float(r["balance_after"]) for r in rows] == [10.0, 0.0]


def test_auth_is_verified_and_roles_enforced(phase1: Service) -> None:
    pid, auth = phase1.consumer()
    with phase1.client() as c:
        assert c.get("/cart").status_code == 401
        assert c.get("/cart", headers=token(pid, "consumer", ttl_s=-10)).status_code == 401
        forged = {
            "Authorization": "Bearer "
            + __import__("jwt").encode(
                {"sub": str(pid), "role": "admin", "exp": 2**33},
                "a-wrong-secret-that-is-also-32-bytes-long",
                algorithm="HS256",
            )
        }
        r = c.get("/admin/jobs", headers=forged)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert c.get("/cart", headers={"Authorization": "Basic abc"}).status_code == 401
        for path in ("/admin/jobs", "/driver/batches", "/farmer/products", "/payouts"):
            r = c.get(path, headers=auth)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", path
        _, farmer = phase1.user("farmer")
        assert c.get("/cart", headers=farmer).status_code == 403
        assert (
            c.post(
                "/admin/batches/generate",
                json={"delivery_date": str(dt.date.today())},
                headers=farmer,
            ).status_code
            == 403
        )


def test_rate_limit_answers_429_from_redis(phase1: Service) -> None:
    _, auth = phase1.consumer()
    with phase1.client() as c:
        codes = [c.get("/cart", headers=auth).status_code for _ in range(105)]
    assert codes[:100] == [200] * 100 and codes[-1] == 429
    text = phase1.metrics()
    assert (
        metric_value(
            text,
            "marketplace_rate_limit_decisions_total",
            backend="redis_sliding_window",
            decision="limited",
        )
        >= 1
    )
    with phase1.world.connect("phase1") as conn:
        assert conn.execute("SELECT count(*) AS n FROM rate_limits").fetchone()["n"] == 0


def test_batches_driver_claim_and_stops(phase1: Service) -> None:
    date = dt.date.today() + dt.timedelta(days=301)  # a day no other test delivers on
    products = phase1.world.product_ids("phase1")
    order_ids = []
    with phase1.client() as c:
        for i in range(5):
            _, auth = phase1.consumer(zip_code=("00100", "00150")[i % 2])
            c.post(
                "/cart/items", json={"product_id": products[10 + i], "quantity": 1}, headers=auth
            )
            r = c.post("/checkout", json={"delivery_date": date.isoformat()}, headers=auth)
            assert r.status_code == 201, r.text
            order_ids.append(r.json()["order_id"])
        _, admin = phase1.user("admin")
        gen = c.post(
            "/admin/batches/generate", json={"delivery_date": date.isoformat()}, headers=admin
        )
        assert gen.status_code == 200, gen.text
        result = gen.json()
        assert result["orders_batched"] == 5 and len(result["batches"]) == 2
        again = c.post(
            "/admin/batches/generate", json={"delivery_date": date.isoformat()}, headers=admin
        ).json()
        assert again["orders_batched"] == 0
        d1, driver1 = phase1.user("driver")
        _, driver2 = phase1.user("driver")
        batch_id = result["batches"][0]["batch_id"]
        listed = c.get(
            "/driver/batches", params={"delivery_date": date.isoformat()}, headers=driver1
        ).json()
        assert batch_id in [b["id"] for b in listed["batches"]]
        assert c.post(f"/driver/batches/{batch_id}/claim", headers=driver1).status_code == 200
        r = c.post(f"/driver/batches/{batch_id}/claim", headers=driver2)
        assert r.status_code == 409 and r.json()["error"]["code"] == "already_claimed"
        route = c.get(f"/driver/batches/{batch_id}", headers=driver1).json()
        assert [s["sequence_number"] for s in route["stops"]] == list(
            range(1, len(route["stops"]) + 1)
        )
        assert c.get(f"/driver/batches/{batch_id}", headers=driver2).status_code == 403
        stop = route["stops"][0]
        url = f"/driver/batches/{batch_id}/stops/{stop['id']}"
        assert c.patch(url, json={"status": "delivered"}, headers=driver2).status_code == 403
        assert c.patch(url, json={"status": "teleported"}, headers=driver1).status_code == 422
        r = c.patch(url, json={"status": "delivered"}, headers=driver1)
        assert r.status_code == 200 and r.json()["status"] == "delivered"
        for s in route["stops"][1:]:
            c.patch(
                f"/driver/batches/{batch_id}/stops/{s['id']}",
                json={"status": "delivered"},
                headers=driver1,
            )
        done = c.get(f"/driver/batches/{batch_id}", headers=driver1).json()
        assert done["status"] == "completed"
        # the driver is paid per delivered stop
        payout = c.post("/payouts", headers=driver1)
        assert payout.status_code == 201, payout.text
        assert payout.json()["status"] == "paid" and payout.json()["amount"] == 5.0 * len(
            route["stops"]
        )
        assert c.post("/payouts", headers=driver1).status_code == 409


def test_farmer_products_payout_and_admin_analytics(phase1: Service) -> None:
    with phase1.world.connect("phase1") as conn:
        farmer_id = conn.execute(
            "SELECT profile_id FROM farm_profiles ORDER BY id LIMIT 1"
        ).fetchone()["profile_id"]
    farmer = token(farmer_id, "farmer")
    _, admin = phase1.user("admin")
    with phase1.client() as c:
        mine = c.get("/farmer/products", headers=farmer).json()["products"]
        assert len(mine) == 30
        r = c.patch(
            f"/farmer/products/{mine[0]['id']}", json={"stock_quantity": 999}, headers=farmer
        )
        assert r.status_code == 200 and r.json()["stock_quantity"] == 999
        _, other_farmer = phase1.user("farmer")
        assert (
            c.patch(
                f"/farmer/products/{mine[0]['id']}",
                json={"stock_quantity": 1},
                headers=other_farmer,
            ).status_code
            == 404
        )
        assert (
            c.patch(
                f"/farmer/products/{mine[0]['id']}", json={"stock_quantity": -1}, headers=farmer
            ).status_code
            == 422
        )
        payouts = c.get("/payouts", headers=farmer).json()
        assert payouts["available"] > 0
        r = c.post("/payouts", headers=farmer)
        assert (
            r.status_code == 201
            and r.json()["status"] == "paid"
            and r.json()["stripe_payout_id"].startswith("po_")
        )
        revenue = c.get("/admin/analytics/daily-revenue", headers=admin).json()
        assert revenue["source"] == "live" and sum(d["order_count"] for d in revenue["days"]) >= 1
        perf = c.get("/admin/analytics/product-performance", headers=admin).json()
        assert perf["products"] and perf["products"][0]["total_revenue"] > 0
        assert (
            c.get(
                "/admin/analytics/daily-revenue",
                params={"start": "2026-01-02", "end": "2026-01-01"},
                headers=admin,
            ).status_code
            == 400
        )


def test_metrics_exposition(phase1: Service) -> None:
    with phase1.client() as c:
        c.get("/products")
    text = phase1.metrics()
    assert (
        metric_value(text, "marketplace_http_requests_total", route="/products", status="200") >= 1
    )
    assert "marketplace_db_pool_acquire_seconds_bucket" in text
    assert (
        metric_value(
            text,
            "marketplace_external_calls_total",
            service="stripe",
            operation="payment_intents.create",
            outcome="ok",
        )
        >= 1
    )
    assert 'pool="pgbouncer"' in text
