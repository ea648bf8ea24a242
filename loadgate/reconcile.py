"""Reconcile what the run was told with what the database holds (issue 21).

Every write the service acknowledged during a run is in the ``ack`` column of the run's
events (:mod:`scenarios.acks`). After the load, each is checked against the database,
like a Jepsen checker: nothing acknowledged may be missing or doubled.

- ``order``: the order exists, for that consumer, with the acknowledged total; an order
  acknowledged as paid is paid (or later delivered/refunded) with exactly one succeeded
  PaymentIntent; one acknowledged ``payment_pending`` is paid (one PaymentIntent),
  still pending or finally ``payment_failed`` (phase 3's deferred payment, seed §5.5).
- ``cart``: per consumer and product, the units acknowledged by adds are in an order of
  that consumer placed during the run, or still in the cart. A removal or a quantity
  set acknowledged for the pair restarts the count from what it left: only adds sent
  after its answer count, and only orders that can have read the cart after it (their
  checkout answered later). Several users may share one consumer, so this is an
  inequality (acknowledged <= ordered + in the cart), never a false alarm; a line
  capped at the maximum quantity cannot be counted (skipped).
- ``payout``: the payout exists once, for that recipient, with the acknowledged amount.
- ``claim``: the batch is held by the driver that was told it won it.
- ``stop``: the stop exists with its order; one acknowledged ``delivered`` stays so.
- ``stock``: every product's stock is its stock at the load's start (``baseline/``)
  minus the units of the run's orders that hold stock (all but ``payment_failed``,
  whose stock was given back). A product a farmer restocked during the run (an
  absolute value, racing the orders) is skipped, and so is the whole check when a
  restock's outcome is unknown (no answer, or a 5xx).

Each violation is one line ``lost-<kind> key=id ...: problem`` (the format of
:mod:`marketplace.invariants`, so ``loadgate verify`` shows both alike).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

PAID = ("paid", "completed", "delivered", "refunded")
PENDING_OK = (*PAID, "payment_pending", "payment_failed")
LOST_KINDS = ("order", "cart", "payout", "claim", "stop", "stock")
STOCK_BASELINE = "baseline/products.parquet"
"""Each product's stock when the load started (written by ``loadgate run`` after the
fixtures load): the "fixtures" of fixtures - ordered + restocked."""
FARMER_PATCH = ("PATCH", "/farmer/products/[id]")
UNANSWERED_SLACK_US = 60_000_000
"""An order without a recorded answer may have read the cart up to the request timeout
(60 s, ``runformat.schemas.REQUEST_TIMEOUT_S``) after its transaction started."""


@dataclass
class Reconciliation:
    """Acknowledged writes seen per kind, and the ones the database does not hold."""

    acknowledged: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    """Acknowledgements that could not be checked (capped lines, unreadable bodies)."""
    recorded: bool = True
    """False for a run directory written before acks were recorded (nothing to check)."""

    def counts(self) -> dict[str, int]:
        """Violations per kind (``lost-order`` ...), every kind present."""
        per = Counter(v.split(" ", 1)[0].split(":", 1)[0] for v in self.violations)
        return {f"lost-{k}": per.get(f"lost-{k}", 0) for k in LOST_KINDS}

    def as_dict(self) -> dict[str, Any]:
        return {
            "recorded": self.recorded,
            "acknowledged": dict(self.acknowledged),
            "skipped": dict(self.skipped),
            "counts": self.counts(),
            "violations": self.violations,
        }


def unknown_restocks(run_dir: Path) -> int:
    """Farmer product changes whose outcome the client never learned (status 0 or 5xx)."""
    n = 0
    for path in sorted((Path(run_dir) / "events").glob("*.parquet")):
        try:
            table = pq.read_table(path, columns=["method", "name", "status"])
        except (OSError, ValueError):
            continue
        for method, name, status in zip(*table.to_pydict().values(), strict=True):
            if (method, name) == FARMER_PATCH and (status == 0 or status >= 500):
                n += 1
    return n


def snapshot_stock(conn: Any, run_dir: Path) -> int:
    """Write every product's stock now (before the load) to ``baseline/``; rows written."""
    import pyarrow as pa

    rows = conn.execute("SELECT id, stock_quantity FROM products ORDER BY id").fetchall()
    table = pa.table(
        {
            "product_id": pa.array([r["id"] for r in rows], pa.int64()),
            "stock_quantity": pa.array([r["stock_quantity"] for r in rows], pa.int64()),
        }
    )
    path = Path(run_dir) / STOCK_BASELINE
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return table.num_rows


def read_acks(run_dir: Path) -> tuple[list[dict[str, Any]], bool]:
    """Every acknowledged write of the run, in time order: (acks, column present)."""
    acks: list[dict[str, Any]] = []
    present = False
    for path in sorted((Path(run_dir) / "events").glob("*.parquet")):
        try:
            names = pq.read_schema(path).names
            if "ack" not in names:
                continue
            present = True
            table = pq.read_table(path, columns=["ts_us", "latency_us", "ack"])
        except (OSError, ValueError):  # a truncated file: analysis warns about it
            continue
        columns = [table.column(c).to_pylist() for c in ("ts_us", "latency_us", "ack")]
        for ts, latency, raw in zip(*columns, strict=True):
            if raw:
                record = json.loads(raw)
                record["_start_us"], record["_end_us"] = ts, ts + (latency or 0)
                acks.append(record)
    acks.sort(key=lambda a: a["_start_us"])
    return acks, present


def load_start_us(run_dir: Path) -> int:
    """The load's start (manifest ``load_started_at``, else ``started_at``) in µs."""
    manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    text = manifest.get("load_started_at") or manifest["started_at"]
    when = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1_000_000)


def reconcile(conn: Any, run_dir: Path, intents: list[dict[str, Any]] | None) -> Reconciliation:
    """Check the run's acknowledged writes against the database (``conn``: dict rows).

    ``intents``: the Stripe mock's PaymentIntents (None: charge checks skipped).
    """
    acks, present = read_acks(run_dir)
    result = Reconciliation(recorded=present)
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ack in acks:
        result.acknowledged[ack["kind"]] += 1
        if ack.get("unreadable"):
            result.skipped[ack["kind"]] += 1
        else:
            by_kind[ack["kind"]].append(ack)
    check_orders(conn, by_kind["order"], intents, result)
    check_cart(conn, by_kind, load_start_us(run_dir), result)
    check_payouts(conn, by_kind["payout"], result)
    check_claims(conn, by_kind["claim"], result)
    check_stops(conn, by_kind["stop"], result)
    if present:
        check_stock(conn, run_dir, by_kind["product"], result)
    return result


def check_stock(
    conn: Any, run_dir: Path, restocks: list[dict[str, Any]], out: Reconciliation
) -> None:
    path = Path(run_dir) / STOCK_BASELINE
    if not path.is_file():
        out.skipped["stock"] += 1  # a run without a baseline (older, or --target)
        return
    if unknown_restocks(run_dir):
        out.skipped["stock"] += 1
        return
    baseline = pq.read_table(path).to_pydict()
    start = dict(zip(baseline["product_id"], baseline["stock_quantity"], strict=True))
    restocked = {int(a["product_id"]) for a in restocks if a.get("product_id") is not None}
    since = dt.datetime.fromtimestamp((load_start_us(run_dir) - 120_000_000) / 1e6, dt.UTC)
    ordered = {
        r["product_id"]: int(r["n"])
        for r in conn.execute(
            "SELECT oi.product_id, sum(oi.quantity) AS n FROM order_items oi"
            " JOIN orders o ON o.id = oi.order_id"
            " WHERE o.created_at >= %s AND o.status <> 'payment_failed' GROUP BY oi.product_id",
            (since,),
        ).fetchall()
    }
    now = {
        r["id"]: r["stock_quantity"]
        for r in conn.execute("SELECT id, stock_quantity FROM products").fetchall()
    }
    if restocked:
        out.skipped["stock"] += len(restocked)
    for product, first in sorted(start.items()):
        if product in restocked:
            continue
        expected = first - ordered.get(product, 0)
        current = now.get(product)
        if current is not None and current > expected:
            # More stock than the run was told of: a restock the service committed but never
            # answered (in flight when the load stopped, so never recorded). The farmer
            # flow only raises stock, so this is an unacknowledged write, not a lost one.
            out.skipped["stock_unacknowledged_restock"] += 1
            continue
        if current != expected:
            out.violations.append(
                f"lost-stock product={product}: stock {now.get(product)} != {first} at the"
                f" start - {ordered.get(product, 0)} ordered = {expected}"
            )


def _succeeded(intents: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for pi in intents:
        order_id = str((pi.get("metadata") or {}).get("order_id", ""))
        if pi.get("status") == "succeeded" and order_id.isdigit():
            out[int(order_id)].append(pi)
    return out


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _rows_by_id(
    conn: Any, table: str, columns: str, acks: list[dict[str, Any]], key: str
) -> dict[int, dict[str, Any]]:
    """The rows of ``table`` whose id some acknowledgement named in ``key``, by id: one
    query per kind of write, however many were acknowledged."""
    ids = [int(a[key]) for a in acks if a.get(key) is not None]
    sql = f"SELECT {columns} FROM {table} WHERE id = ANY(%s)"  # names are ours, not input
    return {r["id"]: r for r in conn.execute(sql, (ids,)).fetchall()}


def check_orders(
    conn: Any, acks: list[dict[str, Any]], intents: list[dict[str, Any]] | None, out: Reconciliation
) -> None:
    rows = _rows_by_id(conn, "orders", "id, consumer_id, status, total_amount", acks, "order_id")
    charges = _succeeded(intents) if intents is not None else None
    for ack in acks:
        order_id = ack.get("order_id")
        head = f"lost-order order={order_id} consumer={ack.get('user')}"
        row = rows.get(int(order_id)) if order_id is not None else None
        if row is None:
            out.violations.append(f"{head}: acknowledged ({ack.get('status')}) but not in orders")
            continue
        if ack.get("user") is not None and row["consumer_id"] != ack["user"]:
            out.violations.append(f"{head}: the order belongs to consumer {row['consumer_id']}")
        if ack.get("total_amount") is not None and row["total_amount"] != _money(
            ack["total_amount"]
        ):
            out.violations.append(
                f"{head}: total {row['total_amount']} != acknowledged {ack['total_amount']}"
            )
        allowed = PENDING_OK if ack.get("status") == "payment_pending" else PAID
        if row["status"] not in allowed:
            out.violations.append(f"{head}: acknowledged {ack.get('status')}, now {row['status']}")
        due = _money(ack.get("amount_due") or 0)
        if charges is not None and due > 0 and row["status"] in PAID:
            n = len(charges.get(int(order_id), []))
            if n != 1:
                out.violations.append(f"{head}: paid with {n} succeeded PaymentIntent(s)")


def check_cart(
    conn: Any, by_kind: dict[str, list[dict[str, Any]]], start_us: int, out: Reconciliation
) -> None:
    """Acknowledged units <= units ordered since the pair's last reset + units in cart."""
    events: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for kind in ("cart_add", "cart_set", "cart_remove"):
        for ack in by_kind[kind]:
            if ack.get("user") is None or ack.get("product_id") is None:
                out.skipped[kind] += 1
                continue
            events[(int(ack["user"]), int(ack["product_id"]))].append(ack)
    if not events:
        return
    consumers = sorted({c for c, _ in events})
    start = dt.datetime.fromtimestamp((start_us - 120_000_000) / 1e6, dt.UTC)
    ordered_rows = conn.execute(
        "SELECT o.id, o.consumer_id, oi.product_id, oi.quantity, o.created_at FROM order_items oi"
        " JOIN orders o ON o.id = oi.order_id"
        " WHERE o.consumer_id = ANY(%s) AND o.created_at >= %s",
        (consumers, start),
    ).fetchall()
    answered = {
        int(a["order_id"]): a["_end_us"] for a in by_kind["order"] if a.get("order_id") is not None
    }
    ordered: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for r in ordered_rows:
        # The latest the order can have read the cart: when its checkout was answered;
        # an order whose answer was not recorded (an error, a timeout): its transaction's
        # start + UNANSWERED_SLACK_US. Later is generous (it can only hide a loss).
        read_by = answered.get(r["id"])
        if read_by is None:
            read_by = int(r["created_at"].timestamp() * 1_000_000) + UNANSWERED_SLACK_US
        ordered[(r["consumer_id"], r["product_id"])].append((read_by, r["quantity"]))
    cart = {
        (r["consumer_id"], r["product_id"]): r["quantity"]
        for r in conn.execute(
            "SELECT c.consumer_id, ci.product_id, ci.quantity FROM cart_items ci"
            " JOIN carts c ON c.id = ci.cart_id WHERE c.consumer_id = ANY(%s)",
            (consumers,),
        ).fetchall()
    }
    for (consumer, product), acks in sorted(events.items()):
        base, since = 0, start_us
        resets = [a for a in acks if a["kind"] != "cart_add"]
        if resets:
            last = max(resets, key=lambda a: a["_end_us"])
            base = int(last.get("quantity") or 0) if last["kind"] == "cart_set" else 0
            since = last["_end_us"]
        adds = [a for a in acks if a["kind"] == "cart_add" and a["_start_us"] >= since]
        if any(a.get("quantity") is None for a in adds):
            out.skipped["cart_add"] += len(adds)
            continue
        acked = base + sum(int(a["quantity"]) for a in adds)
        found = sum(q for read_by, q in ordered.get((consumer, product), []) if read_by > since)
        found += cart.get((consumer, product), 0)
        if acked > found:
            out.violations.append(
                f"lost-cart consumer={consumer} product={product}: {acked} unit(s) acknowledged"
                f" ({len(adds)} add(s)), {found} in orders or in the cart"
                f" ({acked - found} lost)"
            )


def check_payouts(conn: Any, acks: list[dict[str, Any]], out: Reconciliation) -> None:
    rows = _rows_by_id(conn, "payouts", "id, recipient_id, amount", acks, "payout_id")
    told = Counter(int(a["payout_id"]) for a in acks if a.get("payout_id") is not None)
    for ack in acks:
        pid = ack.get("payout_id")
        head = f"lost-payout payout={pid} recipient={ack.get('recipient')}"
        row = rows.get(int(pid)) if pid is not None else None
        if row is None:
            out.violations.append(f"{head}: acknowledged but not in payouts")
            continue
        if ack.get("recipient") is not None and row["recipient_id"] != ack["recipient"]:
            out.violations.append(f"{head}: the payout is recipient {row['recipient_id']}'s")
        if ack.get("amount") is not None and row["amount"] != _money(ack["amount"]):
            out.violations.append(f"{head}: amount {row['amount']} != acknowledged {ack['amount']}")
        if told[int(pid)] > 1:
            out.violations.append(f"{head}: acknowledged {told[int(pid)]} times")
            told[int(pid)] = 1  # say it once


def check_claims(conn: Any, acks: list[dict[str, Any]], out: Reconciliation) -> None:
    held = {
        i: r["driver_id"]
        for i, r in _rows_by_id(conn, "delivery_batches", "id, driver_id", acks, "batch_id").items()
    }
    winners: dict[int, set[int]] = defaultdict(set)
    for ack in acks:
        if ack.get("batch_id") is None:
            continue
        batch, driver = int(ack["batch_id"]), ack.get("driver")
        winners[batch].add(driver)
        if batch not in held:
            out.violations.append(f"lost-claim batch={batch} driver={driver}: batch not found")
        elif driver is not None and held[batch] != driver:
            out.violations.append(
                f"lost-claim batch={batch} driver={driver}: held by driver {held[batch]}"
            )
    for batch, drivers in sorted(winners.items()):
        if len(drivers) > 1:
            out.violations.append(
                f"lost-claim batch={batch}: {len(drivers)} drivers were each told they won it"
            )


def check_stops(conn: Any, acks: list[dict[str, Any]], out: Reconciliation) -> None:
    rows = _rows_by_id(conn, "batch_stops", "id, order_id, status", acks, "stop_id")
    for ack in acks:
        sid = ack.get("stop_id")
        head = f"lost-stop stop={sid} order={ack.get('order_id')}"
        row = rows.get(int(sid)) if sid is not None else None
        if row is None:
            out.violations.append(f"{head}: acknowledged ({ack.get('status')}) but not found")
        elif ack.get("order_id") is not None and row["order_id"] != ack["order_id"]:
            out.violations.append(f"{head}: the stop is order {row['order_id']}'s")
        elif ack.get("status") == "delivered" and row["status"] != "delivered":
            out.violations.append(f"{head}: acknowledged delivered, now {row['status']}")
