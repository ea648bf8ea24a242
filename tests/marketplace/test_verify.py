"""verify: clean after the whole suite's traffic, and catches deliberate corruption."""

from __future__ import annotations

import pytest

from marketplace.invariants import verify
from tests.marketplace.conftest import Service

pytestmark = pytest.mark.services


def test_verify_passes_then_catches_corruption(phase1: Service) -> None:
    world = phase1.world
    products = world.product_ids("phase1")
    pid, auth = phase1.consumer(credits="3.00")
    with phase1.client() as c:
        c.post("/cart/items", json={"product_id": products[2], "quantity": 1}, headers=auth)
        order_id = c.post("/checkout", json={}, headers=auth).json()["order_id"]
    report = verify(world.urls["postgres"], world.urls["stripe"])
    assert report.ok, report.text()
    assert report.checked["orders"] >= 1 and report.checked["ledger_entries"] >= 2

    with world.connect("phase1") as conn:
        conn.execute("BEGIN")
        entry = conn.execute(
            "UPDATE credits_ledger SET balance_after = balance_after + 7 WHERE id = ("
            " SELECT max(id) FROM credits_ledger WHERE consumer_id = %s) RETURNING id",
            (pid,),
        ).fetchone()["id"]
        conn.execute("UPDATE products SET stock_quantity = -4 WHERE id = %s", (products[59],))
        conn.execute(
            "UPDATE orders SET amount_charged = amount_charged + 1 WHERE id = %s", (order_id,)
        )
        report = verify(world.urls["postgres"], world.urls["stripe"])
        conn.execute("ROLLBACK")
    # the corruption is uncommitted and verify reads committed data in another session
    assert report.ok

    with world.connect("phase1") as conn:
        conn.execute(
            "UPDATE credits_ledger SET balance_after = balance_after + 7 WHERE id = %s", (entry,)
        )
        conn.execute("UPDATE products SET stock_quantity = -4 WHERE id = %s", (products[59],))
        conn.execute(
            "UPDATE orders SET amount_charged = amount_charged + 1 WHERE id = %s", (order_id,)
        )
        try:
            report = verify(world.urls["postgres"], world.urls["stripe"])
        finally:
            conn.execute(
                "UPDATE credits_ledger SET balance_after = balance_after - 7 WHERE id = %s",
                (entry,),
            )
            conn.execute("UPDATE products SET stock_quantity = 1000 WHERE id = %s", (products[59],))
            conn.execute(
                "UPDATE orders SET amount_charged = amount_charged - 1 WHERE id = %s", (order_id,)
            )
    text = report.text()
    assert not report.ok
    assert f"consumer={pid} entry={entry}" in text
    assert f"product={products[59]}: oversold" in text
    assert f"charge order={order_id}" in text and "amount" in text
    assert verify(world.urls["postgres"], world.urls["stripe"]).ok
