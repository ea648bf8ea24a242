"""``verify``: the correctness invariants that must hold after any run, with ids.

- ledger: per consumer, in id order, balance_after = previous balance_after + amount
  (the first row: = amount) and never negative;
- stock: no product's stock_quantity below zero (oversold);
- charges: no order with more than one succeeded PaymentIntent in Stripe; every paid
  order (amount_charged > 0) has exactly one succeeded PaymentIntent of exactly that
  amount; no PaymentIntent succeeded for an order that is not paid;
- batches: every order in a generated batch appears in exactly one stop, of that batch.

Run: ``python -m marketplace.invariants --database-url URL --stripe-url URL``
(exit 1 when any invariant is violated).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from marketplace.breakers import Breakers
from marketplace.stripe_client import StripeGateway, to_cents

PAID_STATUSES = ("paid", "completed", "delivered")


@dataclass
class Report:
    violations: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def text(self) -> str:
        head = ", ".join(f"{k}={v}" for k, v in self.checked.items())
        lines = [f"verify: checked {head}"]
        lines += [f"VIOLATION {v}" for v in self.violations]
        lines.append("verify: OK" if self.ok else f"verify: {len(self.violations)} violation(s)")
        return "\n".join(lines)


def check_ledger(conn: psycopg.Connection, report: Report) -> None:
    rows = conn.execute(
        "SELECT id, consumer_id, amount, balance_after FROM credits_ledger ORDER BY consumer_id, id"
    ).fetchall()
    previous: dict[int, Decimal] = {}
    for r in rows:
        expected = previous.get(r["consumer_id"], Decimal("0")) + r["amount"]
        if r["balance_after"] != expected:
            report.violations.append(
                f"ledger consumer={r['consumer_id']} entry={r['id']}: balance_after "
                f"{r['balance_after']} != previous + amount = {expected}"
            )
        if r["balance_after"] < 0:
            report.violations.append(
                f"ledger consumer={r['consumer_id']} entry={r['id']}: negative balance "
                f"{r['balance_after']}"
            )
        previous[r["consumer_id"]] = r["balance_after"]
    report.checked["ledger_entries"] = len(rows)


def check_stock(conn: psycopg.Connection, report: Report) -> None:
    rows = conn.execute(
        "SELECT id, stock_quantity FROM products WHERE stock_quantity < 0 ORDER BY id"
    ).fetchall()
    for r in rows:
        report.violations.append(f"stock product={r['id']}: oversold, stock {r['stock_quantity']}")
    report.checked["products"] = conn.execute("SELECT count(*) AS n FROM products").fetchone()["n"]


def check_batches(conn: psycopg.Connection, report: Report) -> None:
    rows = conn.execute(
        "SELECT o.id, o.delivery_batch_id, count(s.id) AS stops,"
        " count(s.id) FILTER (WHERE s.delivery_batch_id = o.delivery_batch_id) AS own"
        " FROM orders o LEFT JOIN batch_stops s ON s.order_id = o.id"
        " WHERE o.delivery_batch_id IS NOT NULL GROUP BY o.id, o.delivery_batch_id ORDER BY o.id"
    ).fetchall()
    for r in rows:
        if r["stops"] != 1 or r["own"] != 1:
            report.violations.append(
                f"batch={r['delivery_batch_id']} order={r['id']}: in {r['stops']} stop(s), "
                f"{r['own']} of its own batch (expected exactly 1)"
            )
    orphans = conn.execute(
        "SELECT s.id, s.order_id, s.delivery_batch_id FROM batch_stops s"
        " LEFT JOIN orders o ON o.id = s.order_id"
        " WHERE o.id IS NULL OR o.delivery_batch_id IS DISTINCT FROM s.delivery_batch_id"
    ).fetchall()
    for r in orphans:
        report.violations.append(
            f"batch={r['delivery_batch_id']} stop={r['id']}: order {r['order_id']} "
            "is not assigned to this batch"
        )
    report.checked["batched_orders"] = len(rows)


def check_charges(conn: psycopg.Connection, intents: list[dict[str, Any]], report: Report) -> None:
    succeeded: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for pi in intents:
        order_id = (pi.get("metadata") or {}).get("order_id")
        if pi.get("status") == "succeeded" and order_id and str(order_id).isdigit():
            succeeded[int(order_id)].append(pi)
    orders = {
        r["id"]: r
        for r in conn.execute(
            "SELECT id, status, amount_charged, stripe_payment_intent_id FROM orders"
        ).fetchall()
    }
    # A Stripe account may be shared with other databases (the test suite does): a
    # PaymentIntent for an order id beyond this database's highest is theirs.
    highest = max(orders, default=0)
    for order_id, pis in sorted(succeeded.items()):
        if order_id > highest:
            continue
        ids = ",".join(p["id"] for p in pis)
        order = orders.get(order_id)
        if len(pis) > 1:
            report.violations.append(f"charge order={order_id}: charged {len(pis)} times ({ids})")
        if order is None:
            report.violations.append(f"charge order={order_id}: PaymentIntent {ids} for no order")
        elif order["status"] not in PAID_STATUSES:
            report.violations.append(
                f"charge order={order_id}: status {order['status']} but succeeded PI {ids}"
            )
    for order_id, order in sorted(orders.items()):
        if order["status"] not in PAID_STATUSES or order["amount_charged"] <= 0:
            continue
        pis = succeeded.get(order_id, [])
        if len(pis) != 1:
            report.violations.append(
                f"charge order={order_id}: paid {order['amount_charged']} but {len(pis)} "
                "succeeded PaymentIntent(s)"
            )
        elif pis[0]["amount"] != to_cents(order["amount_charged"]):
            report.violations.append(
                f"charge order={order_id}: PI {pis[0]['id']} amount {pis[0]['amount']} != "
                f"{to_cents(order['amount_charged'])} cents"
            )
        elif order["stripe_payment_intent_id"] != pis[0]["id"]:
            report.violations.append(
                f"charge order={order_id}: recorded PI {order['stripe_payment_intent_id']} "
                f"!= succeeded PI {pis[0]['id']}"
            )
    report.checked["orders"] = len(orders)
    report.checked["payment_intents"] = len(intents)


async def fetch_intents(stripe_url: str, stripe_key: str) -> list[dict[str, Any]]:
    gateway = StripeGateway(stripe_key, stripe_url, Breakers(enabled=False))
    return [
        {
            "id": p.id,
            "status": p.status,
            "amount": p.amount,
            "metadata": p.metadata.to_dict() if p.metadata else {},
        }
        for p in await gateway.list_payment_intents()
    ]


def verify(
    database_url: str, stripe_url: str | None, stripe_key: str = "sk_test_loadgate"
) -> Report:
    """Check every invariant; Stripe checks are skipped when ``stripe_url`` is None."""
    report = Report()
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        check_ledger(conn, report)
        check_stock(conn, report)
        check_batches(conn, report)
        if stripe_url:
            check_charges(conn, asyncio.run(fetch_intents(stripe_url, stripe_key)), report)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m marketplace.invariants")
    p.add_argument("--database-url", default=os.environ.get("LOADGATE_DATABASE_URL"))
    p.add_argument("--stripe-url", default=os.environ.get("LOADGATE_STRIPE_URL"))
    p.add_argument(
        "--stripe-key", default=os.environ.get("LOADGATE_STRIPE_KEY", "sk_test_loadgate")
    )
    args = p.parse_args(argv)
    if not args.database_url:
        print("error: --database-url is required", file=sys.stderr)
        return 2
    report = verify(args.database_url, args.stripe_url, args.stripe_key)
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
