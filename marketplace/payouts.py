"""Farmer and driver payouts through Stripe.

Earnings: a farmer gets ``FARMER_SHARE`` of the item revenue of paid/completed/
delivered orders for their farms' products; a driver ``DRIVER_FEE_PER_STOP`` per
delivered stop. A payout request takes what is earned and not yet paid out (failed
payouts don't count), under a lock on the recipient's profile row so two requests
cannot pay the same money; the Stripe payout is made at once (phase0/1) or by the
job queue (phase2+).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import stripe

from marketplace.breakers import BreakerOpen
from marketplace.errors import ApiError
from marketplace.serial import jsonable
from marketplace.state import AppState
from marketplace.stripe_client import to_cents

FARMER_SHARE = Decimal("0.90")
DRIVER_FEE_PER_STOP = Decimal("5.00")
MIN_PAYOUT = Decimal("1.00")


async def earned(conn: Any, profile_id: int, role: str) -> Decimal:
    if role == "farmer":
        cur = await conn.execute(
            "SELECT coalesce(sum(oi.subtotal), 0) AS total FROM order_items oi"
            " JOIN orders o ON o.id = oi.order_id JOIN products p ON p.id = oi.product_id"
            " JOIN farm_profiles f ON f.id = p.farm_profile_id"
            " WHERE f.profile_id = %s AND o.status IN ('paid', 'completed', 'delivered')",
            (profile_id,),
        )
        return ((await cur.fetchone())["total"] * FARMER_SHARE).quantize(Decimal("0.01"))
    cur = await conn.execute(
        "SELECT count(*) AS n FROM batch_stops s JOIN delivery_batches b"
        " ON b.id = s.delivery_batch_id WHERE b.driver_id = %s AND s.status = 'delivered'",
        (profile_id,),
    )
    return (await cur.fetchone())["n"] * DRIVER_FEE_PER_STOP


async def available(conn: Any, profile_id: int, role: str) -> Decimal:
    cur = await conn.execute(
        "SELECT coalesce(sum(amount), 0) AS paid FROM payouts"
        " WHERE recipient_id = %s AND status <> 'failed'",
        (profile_id,),
    )
    return await earned(conn, profile_id, role) - (await cur.fetchone())["paid"]


async def request_payout(state: AppState, profile_id: int, role: str) -> dict[str, Any]:
    """Create a pending payout of everything available (409 when under the minimum)."""
    async with state.db.write() as conn:
        await conn.execute("SELECT id FROM profiles WHERE id = %s FOR UPDATE", (profile_id,))
        amount = await available(conn, profile_id, role)
        if amount < MIN_PAYOUT:
            raise ApiError(409, "nothing_to_pay", f"available balance {amount} is below minimum")
        cur = await conn.execute(
            "INSERT INTO payouts (recipient_id, amount) VALUES (%s, %s)"
            " RETURNING id, recipient_id, amount, currency, status, created_at",
            (profile_id, amount),
        )
        return jsonable(await cur.fetchone())


class PayoutNotSent(Exception):
    """Stripe did not take the payout; it is pending again so a retry can send it."""


async def process_payout(state: AppState, payout_id: int, final: bool = True) -> dict[str, Any]:
    """Send one pending payout to Stripe and record the outcome.

    A Stripe failure on a ``final`` attempt marks the payout failed; on an earlier
    attempt (the queue retries payouts, seed §4.3 ``attempts: 5``) it goes back to
    pending and :class:`PayoutNotSent` tells the queue to try again.
    """
    async with state.db.write() as conn:
        cur = await conn.execute(
            "UPDATE payouts SET status = 'processing' WHERE id = %s AND status = 'pending'"
            " RETURNING amount",
            (payout_id,),
        )
        row = await cur.fetchone()
    if row is None:
        raise ApiError(409, "not_pending", f"payout {payout_id} is not pending")
    try:
        result = await state.stripe.payout(to_cents(row["amount"]), payout_id)
        status, stripe_id, reason = "paid", str(result.id), None
    except (BreakerOpen, stripe.StripeError) as exc:
        if not final:
            async with state.db.write() as conn:
                await conn.execute(
                    "UPDATE payouts SET status = 'pending' WHERE id = %s AND status = 'processing'",
                    (payout_id,),
                )
            raise PayoutNotSent(str(exc)[:200]) from exc
        status, stripe_id, reason = "failed", None, str(exc)[:200]
    async with state.db.write() as conn:
        cur = await conn.execute(
            "UPDATE payouts SET status = %s, stripe_payout_id = %s, failure_reason = %s,"
            " processed_at = now() WHERE id = %s"
            " RETURNING id, recipient_id, amount, currency, status, stripe_payout_id, created_at",
            (status, stripe_id, reason, payout_id),
        )
        return jsonable(await cur.fetchone())
