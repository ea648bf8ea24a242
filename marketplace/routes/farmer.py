"""Farmer endpoints: own products (stock/price updates invalidate the cache), payouts.

Payout endpoints are shared with drivers (both are paid through Stripe).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from marketplace import payouts
from marketplace.auth import Principal
from marketplace.cache import PRODUCTS_AVAILABLE
from marketplace.deps import ID_MAX, get_state, role
from marketplace.errors import QueueUnavailable, bad_request, not_found, responses
from marketplace.serial import jsonable
from marketplace.state import AppState
from marketplace.validation import clean_query

router = APIRouter(
    tags=["farmer"],
    dependencies=[Depends(clean_query)],
    responses=responses(401, 403, 422, 429, 503),
)
State = Annotated[AppState, Depends(get_state)]
Farmer = Annotated[Principal, Depends(role("farmer"))]
Payee = Annotated[Principal, Depends(role("farmer", "driver"))]
PathId = Annotated[int, Path(ge=1, le=ID_MAX)]


class ProductUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    price: Decimal | None = Field(default=None, ge=0, le=100000, decimal_places=2)
    stock_quantity: int | None = Field(default=None, ge=0, le=1_000_000, strict=True)
    is_available: bool | None = None


@router.get("/farmer/products")
async def my_products(state: State, user: Farmer) -> dict[str, Any]:
    async with await state.db.read(user.profile_id) as conn:
        cur = await conn.execute(
            "SELECT p.id, p.name, p.category, p.price, p.stock_quantity, p.is_available"
            " FROM products p JOIN farm_profiles f ON f.id = p.farm_profile_id"
            " WHERE f.profile_id = %s ORDER BY p.id",
            (user.profile_id,),
        )
        return {"products": jsonable(await cur.fetchall())}


@router.patch("/farmer/products/{product_id}", responses=responses(400, 404))
async def update_product(
    state: State, user: Farmer, product_id: PathId, body: ProductUpdate
) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise bad_request("no_changes", "nothing to update")
    assignments = ", ".join(f"{column} = %s" for column in changes)  # names from the model
    async with state.db.write() as conn:
        cur = await conn.execute(
            f"UPDATE products SET {assignments}, updated_at = now() WHERE id = %s"
            " AND farm_profile_id IN (SELECT id FROM farm_profiles WHERE profile_id = %s)"
            " RETURNING id, name, price, stock_quantity, is_available",
            (*changes.values(), product_id, user.profile_id),
        )
        row = await cur.fetchone()
    if row is None:
        raise not_found("product")
    await state.db.note_write(user.profile_id)
    await state.cache.invalidate(f"product:{product_id}")
    await state.cache.invalidate_prefix(PRODUCTS_AVAILABLE)
    return jsonable(row)


@router.get("/payouts")
async def my_payouts(state: State, user: Payee) -> dict[str, Any]:
    async with await state.db.read(user.profile_id) as conn:
        balance = await payouts.available(conn, user.profile_id, user.role)
        cur = await conn.execute(
            "SELECT id, amount, currency, status, stripe_payout_id, created_at, processed_at"
            " FROM payouts WHERE recipient_id = %s ORDER BY id DESC LIMIT 50",
            (user.profile_id,),
        )
        rows = await cur.fetchall()
    return {"available": float(balance), "payouts": jsonable(rows)}


@router.post(
    "/payouts",
    status_code=201,
    responses={
        202: {"description": "Payout queued (job id to poll), or deferred (phase3, queue down)"},
        **responses(409, 503),
    },
)
async def request_payout(state: State, user: Payee) -> JSONResponse:
    """Pay out the available balance: at once (201) or through the job queue (202)."""
    payout = await payouts.request_payout(state, user.profile_id, user.role)
    await state.db.note_write(user.profile_id)
    if state.jobs is not None:
        try:
            job_id = await state.jobs.enqueue("process_payout_job", payout["id"])
        except QueueUnavailable:
            if not state.profile.circuit_breakers:
                raise
            # Phase 3 fallback: the payout is recorded; the reconciler queues it later.
            return JSONResponse({**payout, "status": "deferred"}, status_code=202)
        return JSONResponse({**payout, "job_id": job_id, "status": "queued"}, status_code=202)
    return JSONResponse(await payouts.process_payout(state, payout["id"]), status_code=201)
