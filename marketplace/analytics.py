"""Admin analytics: live aggregation (phase0-2) or materialized views (phase3, seed §5.4)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from marketplace.serial import jsonable
from marketplace.state import AppState

log = logging.getLogger("marketplace.analytics")

REVENUE_STATUSES = ("paid", "completed", "delivered")
LIVE_DAILY = (
    "SELECT date_trunc('day', created_at)::date AS date, count(*) AS order_count,"
    " sum(total_amount) AS total_revenue, avg(total_amount) AS avg_order_value,"
    " count(DISTINCT consumer_id) AS unique_customers FROM orders"
    " WHERE status = ANY(%s) AND created_at >= %s AND created_at < %s + 1"
    " GROUP BY 1 ORDER BY 1"
)
VIEW_DAILY = (
    "SELECT date, order_count, total_revenue, avg_order_value, unique_customers"
    " FROM daily_revenue WHERE date >= %s AND date <= %s ORDER BY date"
)
LIVE_PRODUCTS = (
    "SELECT p.id, p.name, p.farm_profile_id, count(oi.id) AS times_ordered,"
    " coalesce(sum(oi.quantity), 0) AS total_quantity_sold,"
    " coalesce(sum(oi.subtotal), 0) AS total_revenue, avg(oi.unit_price) AS avg_price"
    " FROM products p JOIN order_items oi ON oi.product_id = p.id"
    " JOIN orders o ON o.id = oi.order_id WHERE o.status = ANY(%s)"
    " GROUP BY p.id, p.name, p.farm_profile_id ORDER BY total_revenue DESC, p.id LIMIT %s"
)
VIEW_PRODUCTS = (
    "SELECT id, name, farm_profile_id, times_ordered, total_quantity_sold, total_revenue,"
    " avg_price FROM product_performance ORDER BY total_revenue DESC, id LIMIT %s"
)


async def daily_revenue(state: AppState, start: dt.date, end: dt.date) -> dict[str, Any]:
    async with await state.db.read() as conn:
        if state.profile.materialized_views:
            cur = await conn.execute(VIEW_DAILY, (start, end))
        else:
            cur = await conn.execute(LIVE_DAILY, (list(REVENUE_STATUSES), start, end))
        rows = await cur.fetchall()
    source = "materialized_view" if state.profile.materialized_views else "live"
    return {"source": source, "days": jsonable(rows)}


async def product_performance(state: AppState, limit: int) -> dict[str, Any]:
    async with await state.db.read() as conn:
        if state.profile.materialized_views:
            cur = await conn.execute(VIEW_PRODUCTS, (limit,))
        else:
            cur = await conn.execute(LIVE_PRODUCTS, (list(REVENUE_STATUSES), limit))
        rows = await cur.fetchall()
    source = "materialized_view" if state.profile.materialized_views else "live"
    return {"source": source, "products": jsonable(rows)}


async def refresh(state: AppState) -> None:
    """REFRESH ... CONCURRENTLY: readers keep the old contents meanwhile."""
    async with state.db.write() as conn:
        await conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY daily_revenue")
        await conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY product_performance")


async def refresh_periodically(state: AppState) -> None:
    """The seed schedules refreshes with pg_cron; the service does it itself here."""
    while True:
        await asyncio.sleep(state.settings.analytics_refresh_s)
        try:
            await refresh(state)
        except Exception as exc:  # keep refreshing; the next round may succeed
            log.warning("materialized view refresh failed: %s", exc)
