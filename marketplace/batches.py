"""Batch generation for a delivery date: group paid orders, sequence each group.

Orders of the date not yet in a batch are grouped by zip code, cut into batches of
at most ``BATCH_SIZE`` stops and sequenced by :class:`marketplace.routing.Router`
(OSRM ``/trip``, haversine fallback). The orders are locked ``FOR UPDATE SKIP
LOCKED`` so two generations running at once never put an order in two batches.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

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


async def generate_batches(state: AppState, delivery_date: dt.date) -> dict[str, Any]:
    """Create batches for every unbatched paid order of ``delivery_date``."""
    created, methods = [], defaultdict(int)
    async with state.db.write() as conn:
        cur = await conn.execute(
            "SELECT id, zip_code, address, lon, lat FROM orders"
            " WHERE status = ANY(%s) AND delivery_date = %s AND delivery_batch_id IS NULL"
            " ORDER BY id FOR UPDATE SKIP LOCKED",
            (list(BATCHABLE), delivery_date),
        )
        orders = await cur.fetchall()
        now = dt.datetime.now(dt.UTC)
        for group in group_orders(orders):
            points = [(o["lon"] or 0.0, o["lat"] or 0.0) for o in group]
            route = await state.router.route(points)
            methods[route.method] += 1
            cur = await conn.execute(
                "INSERT INTO delivery_batches (delivery_date, zip_code, route_method,"
                " total_distance_m, total_duration_s) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (
                    delivery_date,
                    group[0]["zip_code"],
                    route.method,
                    route.distance_m,
                    route.duration_s,
                ),
            )
            batch_id = (await cur.fetchone())["id"]
            stops = []
            for seq, (idx, eta) in enumerate(zip(route.order, route.arrival_s, strict=True), 1):
                o = group[idx]
                stops.append(
                    (
                        batch_id,
                        o["id"],
                        seq,
                        o["address"],
                        o["lon"],
                        o["lat"],
                        now + dt.timedelta(seconds=eta),
                    )
                )
            async with conn.cursor() as c:
                await c.executemany(
                    "INSERT INTO batch_stops (delivery_batch_id, order_id, sequence_number,"
                    " address, lon, lat, estimated_arrival) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    stops,
                )
            await conn.execute(
                "UPDATE orders SET delivery_batch_id = %s, updated_at = now() WHERE id = ANY(%s)",
                (batch_id, [o["id"] for o in group]),
            )
            created.append({"batch_id": batch_id, "stops": len(group), "method": route.method})
    return {
        "delivery_date": delivery_date.isoformat(),
        "orders_batched": sum(b["stops"] for b in created),
        "batches": created,
        "route_methods": dict(methods),
    }
