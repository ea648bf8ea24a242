"""Batch generation for a delivery date: group paid orders, sequence each group.

Orders of the date not yet in a batch are grouped by zip code, cut into batches of
at most ``BATCH_SIZE`` stops and sequenced by :class:`marketplace.routing.Router`
(OSRM ``/trip``, haversine fallback) before any transaction opens; each batch is
then written in its own short transaction that claims its orders ``FOR UPDATE
SKIP LOCKED``, so two generations running at once never put an order in two
batches.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from marketplace.routing import Route
from marketplace.state import AppState

BATCH_SIZE = 20
BATCHABLE = ("paid",)


def group_orders(orders: list[dict[str, Any]], size: int = BATCH_SIZE) -> list[list[dict]]:
    """Same zip together, in chunks of ``size`` (order id order within a zip)."""
    by_zip: dict[str, list[dict]] = defaultdict(list)
    for order in orders:
        by_zip[order["zip_code"] or ""].append(order)
    groups = []
    for zip_code in sorted(by_zip):
        rows = by_zip[zip_code]
        groups += [rows[i : i + size] for i in range(0, len(rows), size)]
    return groups


async def _candidates(state: AppState, delivery_date: dt.date) -> list[dict[str, Any]]:
    """Unbatched orders of the date, from the primary (a replica may not have them yet)."""
    async with state.db.primary.connection(transaction=False) as conn:
        cur = await conn.execute(
            "SELECT id, zip_code, address, lon, lat FROM orders"
            " WHERE status = ANY(%s) AND delivery_date = %s AND delivery_batch_id IS NULL"
            " ORDER BY id",
            (list(BATCHABLE), delivery_date),
        )
        return await cur.fetchall()


async def _store(
    conn: Any, delivery_date: dt.date, group: list[dict], route: Route, now: dt.datetime
) -> dict[str, Any] | None:
    """Claim the group's orders still unbatched and write their batch (None: all taken)."""
    cur = await conn.execute(
        "SELECT id FROM orders WHERE id = ANY(%s) AND delivery_batch_id IS NULL"
        " FOR UPDATE SKIP LOCKED",
        ([o["id"] for o in group],),
    )
    free = {r["id"] for r in await cur.fetchall()}
    visits = [
        (group[idx], eta)
        for idx, eta in zip(route.order, route.arrival_s, strict=True)
        if group[idx]["id"] in free
    ]
    if not visits:
        return None
    cur = await conn.execute(
        "INSERT INTO delivery_batches (delivery_date, zip_code, route_method,"
        " total_distance_m, total_duration_s) VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (delivery_date, group[0]["zip_code"], route.method, route.distance_m, route.duration_s),
    )
    batch_id = (await cur.fetchone())["id"]
    stops = [
        (batch_id, o["id"], seq, o["address"], o["lon"], o["lat"], now + dt.timedelta(seconds=eta))
        for seq, (o, eta) in enumerate(visits, 1)
    ]
    async with conn.cursor() as c:
        await c.executemany(
            "INSERT INTO batch_stops (delivery_batch_id, order_id, sequence_number,"
            " address, lon, lat, estimated_arrival) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            stops,
        )
    await conn.execute(
        "UPDATE orders SET delivery_batch_id = %s, updated_at = now() WHERE id = ANY(%s)",
        (batch_id, [o["id"] for o, _ in visits]),
    )
    return {"batch_id": batch_id, "stops": len(visits), "method": route.method}


async def generate_batches(state: AppState, delivery_date: dt.date) -> dict[str, Any]:
    """Create batches for every unbatched paid order of ``delivery_date``.

    Routing (OSRM, up to its 5 s timeout per group) happens before any transaction
    opens: a transaction held across those calls would keep a database connection
    and the orders' row locks for seconds, which the seed's generate-batches (one
    PostgREST call per step) never does. The orders are claimed when the batch is
    written (``FOR UPDATE SKIP LOCKED``, still unbatched); a stop another
    generation took meanwhile is left out, so no order is ever in two batches.
    """
    created, methods = [], defaultdict(int)
    for group in group_orders(await _candidates(state, delivery_date)):
        points = [(o["lon"] or 0.0, o["lat"] or 0.0) for o in group]
        route = await state.router.route(points)
        async with state.db.write() as conn:
            batch = await _store(conn, delivery_date, group, route, dt.datetime.now(dt.UTC))
        if batch is not None:
            methods[route.method] += 1
            created.append(batch)
    return {
        "delivery_date": delivery_date.isoformat(),
        "orders_batched": sum(b["stops"] for b in created),
        "batches": created,
        "route_methods": dict(methods),
    }
