"""``loadgate verify --run`` against a real database: acknowledged writes reconciled.

Postgres and the Stripe mock are real (``local`` provider); the database state comes
from plain SQL and the run directory's events are written in the run format with an
``ack`` column, so every reconciliation rule meets real rows: what is there passes,
what was acknowledged and is missing is named with its ids, and a count per kind.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg.rows import dict_row
from typer.testing import CliRunner

from loadgate.reconcile import STOCK_BASELINE, snapshot_stock
from marketplace.migrate import migrate
from marketplace.profiles import get_profile
from runformat.schemas import EVENT_SCHEMA
from stack.config import StackConfig
from stack.stack import Stack
from tests.test_verify_cli import APP

pytestmark = pytest.mark.services
RUNNER = CliRunner()
NOW_US = int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)


@pytest.fixture(scope="module")
def db() -> Iterator[Stack]:
    with Stack(StackConfig(provider="local", services=("postgres", "stripe"))) as s:
        migrate(s.url("postgres"), get_profile("phase0"))
        yield s


def one(conn: psycopg.Connection, sql: str, *params: object) -> int:
    return conn.execute(sql + " RETURNING id", params).fetchone()["id"]


def event(ts_us: int, method: str, name: str, status: int, ack: dict | None) -> dict:
    return {
        "ts_us": ts_us, "persona": "buyer", "name": name, "method": method, "status": status,
        "latency_us": 1000, "intended_latency_us": 1000, "bytes": 10, "error_class": "",
        "outcome": "", "worker": "w1", "users": 1, "ack": json.dumps(ack) if ack else None,
    }  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(db: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A consumer told: 3 units of A and 2 of B added, then an order with A's 3 units.

    The database holds the order (A × 3) and 1 unit of B in the cart: one acknowledged
    unit of B is lost. A second acknowledged order does not exist at all.
    """
    out = tmp_path_factory.mktemp("run")
    (out / "events").mkdir()
    start = dt.datetime.fromtimestamp(NOW_US / 1e6, dt.UTC)
    (out / "manifest.json").write_text(
        json.dumps({"run_id": "r", "started_at": start.isoformat(), "phase": 1})
    )
    with psycopg.connect(db.url("postgres"), autocommit=True, row_factory=dict_row) as conn:
        consumer = one(conn, "INSERT INTO profiles (role, email, full_name)"
                       " VALUES ('consumer', 'c@x.test', 'C')")  # fmt: skip
        farmer = one(conn, "INSERT INTO profiles (role, email, full_name)"
                     " VALUES ('farmer', 'f@x.test', 'F')")  # fmt: skip
        farm = one(conn, "INSERT INTO farm_profiles (profile_id, farm_name) VALUES (%s, 'F')",
                   farmer)  # fmt: skip
        a, b = (
            one(conn, "INSERT INTO products (farm_profile_id, name, category, price,"
                " stock_quantity) VALUES (%s, %s, 'fruit', 2.50, 50)", farm, name)
            for name in ("A", "B")
        )  # fmt: skip
        snapshot_stock(conn, out)
        order = one(
            conn,
            "INSERT INTO orders (consumer_id, status, subtotal, delivery_fee, credits_applied,"
            " total_amount, amount_charged, delivery_date)"
            " VALUES (%s, 'paid', 7.50, 0, 7.50, 7.50, 0, current_date)",
            consumer,
        )
        conn.execute("INSERT INTO order_items (order_id, product_id, quantity, unit_price,"
                     " subtotal) VALUES (%s, %s, 3, 2.50, 7.50)", (order, a))  # fmt: skip
        conn.execute("UPDATE products SET stock_quantity = 47 WHERE id = %s", (a,))
        cart = one(conn, "INSERT INTO carts (consumer_id) VALUES (%s)", consumer)
        conn.execute("INSERT INTO cart_items (cart_id, product_id, quantity) VALUES (%s, %s, 1)",
                     (cart, b))  # fmt: skip
    t = NOW_US + 1_000_000
    add = {"kind": "cart_add", "user": consumer}
    rows = [
        event(t, "POST", "/cart/items", 201, {**add, "product_id": a, "quantity": 3}),
        event(t + 1, "POST", "/cart/items", 201, {**add, "product_id": b, "quantity": 2}),
        event(t + 2, "GET", "/cart", 200, None),
        event(t + 3, "POST", "/checkout", 201, {"kind": "order", "user": consumer,
              "order_id": order, "total_amount": 7.5, "amount_due": 0, "status": "paid"}),
        event(t + 4, "POST", "/checkout", 201, {"kind": "order", "user": consumer,
              "order_id": order + 1000, "total_amount": 5, "amount_due": 5, "status": "paid"}),
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=EVENT_SCHEMA), out / "events" / "w1.parquet")
    return out


def args(db: Stack, run: Path) -> list[str]:
    return ["verify", "--run", str(run), "--json",
            "--database-url", db.url("postgres"), "--stripe-url", db.url("stripe")]  # fmt: skip


def test_lost_acknowledged_writes_are_named_with_ids_and_counted(db: Stack, run_dir: Path) -> None:
    result = RUNNER.invoke(APP, args(db, run_dir))
    assert result.exit_code == 1, result.output
    body = json.loads(result.output)
    assert body["counts"] == {"lost-cart": 1, "lost-order": 1}, body["violations"]
    by_check = {v["check"]: v for v in body["violations"]}
    assert "1 lost" in by_check["lost-cart"]["message"]
    assert by_check["lost-order"]["message"].endswith("not in orders")
    assert body["acknowledged"]["acknowledged"] == {"cart_add": 2, "order": 2}
    assert (run_dir / STOCK_BASELINE).is_file()  # A: 50 - 3 = 47, B: 50: stock checked, OK


def test_an_older_run_without_the_ack_column_checks_only_invariants(
    db: Stack, run_dir: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    (old / "events").mkdir(parents=True)
    (old / "manifest.json").write_text((run_dir / "manifest.json").read_text())
    table = pq.read_table(run_dir / "events" / "w1.parquet").drop_columns(["ack"])
    pq.write_table(table, old / "events" / "w1.parquet")
    result = RUNNER.invoke(APP, args(db, old))
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["acknowledged"]["recorded"] is False and body["violations"] == []


def test_stock_above_start_minus_ordered_is_a_restock_below_it_is_lost(
    db: Stack, run_dir: Path
) -> None:
    """B (50 at the start, none ordered) at 55: a farmer's restock the service committed
    but never answered (in flight when the load stopped), counted apart and not a
    violation. A (50 - 3 ordered = 47) at 45: two units gone, a violation with its id."""
    with psycopg.connect(db.url("postgres"), autocommit=True, row_factory=dict_row) as conn:
        ids = {r["name"]: r["id"] for r in conn.execute("SELECT id, name FROM products")}
        conn.execute("UPDATE products SET stock_quantity = 55 WHERE id = %s", (ids["B"],))
        conn.execute("UPDATE products SET stock_quantity = 45 WHERE id = %s", (ids["A"],))
        try:
            result = RUNNER.invoke(APP, args(db, run_dir))
        finally:
            conn.execute("UPDATE products SET stock_quantity = 47 WHERE id = %s", (ids["A"],))
            conn.execute("UPDATE products SET stock_quantity = 50 WHERE id = %s", (ids["B"],))
    body = json.loads(result.output)
    assert body["acknowledged"]["skipped"].get("stock_unacknowledged_restock") == 1, body
    (stock,) = [v for v in body["violations"] if v["check"] == "lost-stock"]
    assert stock["ids"] == {"product": str(ids["A"])} and "stock 45" in stock["message"]
    assert body["counts"]["lost-stock"] == 1
