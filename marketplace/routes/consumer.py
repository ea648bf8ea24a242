"""Consumer endpoints: own profile, credits, cart, checkout, orders.

Nothing here takes a consumer id from the URL or body: every query is scoped by the
token's profile id, so one consumer cannot name another's cart or orders at all.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from marketplace import checkout as checkout_flow
from marketplace.auth import Principal
from marketplace.deps import ID_MAX, get_state, role
from marketplace.errors import ApiError, forbidden, not_found, responses
from marketplace.serial import jsonable
from marketplace.state import AppState
from marketplace.validation import CheckoutDate, clean_query

router = APIRouter(
    tags=["consumer"],
    dependencies=[Depends(clean_query)],
    responses=responses(401, 403, 422, 429, 503),
)
State = Annotated[AppState, Depends(get_state)]
Consumer = Annotated[Principal, Depends(role("consumer"))]
AnyUser = Annotated[Principal, Depends(role("consumer", "farmer", "driver", "admin"))]
PathId = Annotated[int, Path(ge=1, le=ID_MAX)]
MAX_QUANTITY = 1000


class CartAdd(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    product_id: int = Field(ge=1, le=ID_MAX)
    quantity: int = Field(default=1, ge=1, le=MAX_QUANTITY)


class CartUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class CheckoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delivery_date: Annotated[dt.date | None, CheckoutDate] = None
    """Today to a year ahead; tomorrow when omitted."""
    use_credits: bool = True


async def load_profile(state: AppState, profile_id: int) -> dict[str, Any] | None:
    async def load() -> dict[str, Any] | None:
        async with await state.db.read(profile_id) as conn:
            cur = await conn.execute(
                "SELECT id, role, email, full_name, phone, address, zip_code, lon, lat,"
                " created_at FROM profiles WHERE id = %s",
                (profile_id,),
            )
            row = await cur.fetchone()
        return jsonable(row) if row else None

    return await state.cache.cached(f"profile:{profile_id}", load)


@router.get("/me", responses=responses(404))
async def me(state: State, user: AnyUser) -> dict[str, Any]:
    profile = await load_profile(state, user.profile_id)
    if profile is None:
        raise not_found("profile")
    return profile


@router.get("/profiles/{profile_id}", responses=responses(404))
async def profile_by_id(state: State, user: AnyUser, profile_id: PathId) -> dict[str, Any]:
    """A profile: your own, or any for admins."""
    if user.role != "admin" and user.profile_id != profile_id:
        raise forbidden("you can only read your own profile")
    profile = await load_profile(state, profile_id)
    if profile is None:
        raise not_found("profile")
    return profile


@router.get("/credits")
async def credits(state: State, user: Consumer) -> dict[str, Any]:
    async with await state.db.read(user.profile_id) as conn:
        cur = await conn.execute(
            "SELECT id, amount, transaction_type, balance_after, order_id, created_at"
            " FROM credits_ledger WHERE consumer_id = %s ORDER BY id DESC LIMIT 50",
            (user.profile_id,),
        )
        rows = await cur.fetchall()
    balance = rows[0]["balance_after"] if rows else 0
    return {"balance": float(balance), "entries": jsonable(rows)}


async def view_cart(state: AppState, consumer_id: int) -> dict[str, Any]:
    async with await state.db.read(consumer_id) as conn:
        cur = await conn.execute(
            "SELECT ci.product_id, p.name, p.price, ci.quantity,"
            " p.price * ci.quantity AS line_total"
            " FROM cart_items ci JOIN carts c ON c.id = ci.cart_id"
            " JOIN products p ON p.id = ci.product_id"
            " WHERE c.consumer_id = %s ORDER BY ci.product_id",
            (consumer_id,),
        )
        items = await cur.fetchall()
    subtotal = sum((i["line_total"] for i in items), 0)
    return {"items": jsonable(items), "subtotal": float(subtotal)}


@router.get("/cart")
async def get_cart(state: State, user: Consumer) -> dict[str, Any]:
    return await view_cart(state, user.profile_id)


@router.post("/cart/items", status_code=201, responses=responses(400, 404, 409))
async def add_to_cart(state: State, user: Consumer, body: CartAdd) -> dict[str, Any]:
    async with state.db.write() as conn:
        cur = await conn.execute(
            "SELECT is_available FROM products WHERE id = %s", (body.product_id,)
        )
        product = await cur.fetchone()
        if product is None:
            raise not_found("product")
        if not product["is_available"]:
            raise ApiError(409, "unavailable", "product is not available")
        cur = await conn.execute(
            "INSERT INTO carts (consumer_id) VALUES (%s) ON CONFLICT (consumer_id)"
            " DO UPDATE SET updated_at = now() RETURNING id",
            (user.profile_id,),
        )
        cart_id = (await cur.fetchone())["id"]
        cur = await conn.execute(
            "INSERT INTO cart_items (cart_id, product_id, quantity) VALUES (%s, %s, %s)"
            " ON CONFLICT (cart_id, product_id)"
            " DO UPDATE SET quantity = LEAST(cart_items.quantity + EXCLUDED.quantity, %s)"
            " RETURNING quantity",
            (cart_id, body.product_id, body.quantity, MAX_QUANTITY),
        )
        quantity = (await cur.fetchone())["quantity"]
    await state.db.note_write(user.profile_id)
    # The units this request added, for the harness's acknowledged-writes record (issue 21):
    # exact unless the line hit MAX_QUANTITY (then fewer may have been added: None).
    added = body.quantity if quantity < MAX_QUANTITY else None
    return {"product_id": body.product_id, "quantity": quantity, "added": added}


@router.put("/cart/items/{product_id}", responses=responses(400, 404))
async def update_cart_item(
    state: State, user: Consumer, product_id: PathId, body: CartUpdate
) -> dict[str, Any]:
    async with state.db.write() as conn:
        cur = await conn.execute(
            "UPDATE cart_items SET quantity = %s WHERE product_id = %s"
            " AND cart_id = (SELECT id FROM carts WHERE consumer_id = %s) RETURNING quantity",
            (body.quantity, product_id, user.profile_id),
        )
        row = await cur.fetchone()
    if row is None:
        raise not_found("cart item")
    await state.db.note_write(user.profile_id)
    return {"product_id": product_id, "quantity": row["quantity"]}


@router.delete("/cart/items/{product_id}", status_code=204, responses=responses(404))
async def remove_cart_item(state: State, user: Consumer, product_id: PathId) -> None:
    async with state.db.write() as conn:
        cur = await conn.execute(
            "DELETE FROM cart_items WHERE product_id = %s"
            " AND cart_id = (SELECT id FROM carts WHERE consumer_id = %s) RETURNING id",
            (product_id, user.profile_id),
        )
        row = await cur.fetchone()
    if row is None:
        raise not_found("cart item")
    await state.db.note_write(user.profile_id)


@router.post(
    "/checkout",
    status_code=201,
    responses={
        202: {"description": "Order placed, payment deferred (provider unavailable)"},
        **responses(400, 402, 404, 409, 502),
    },
)
async def checkout(state: State, user: Consumer, body: CheckoutRequest) -> JSONResponse:
    """Pay the cart: credits first, Stripe for the rest (201 paid, 202 payment deferred)."""
    date = body.delivery_date or (dt.date.today() + dt.timedelta(days=1))
    status, result = await checkout_flow.checkout(state, user.profile_id, date, body.use_credits)
    return JSONResponse(result, status_code=status)


@router.get("/orders")
async def list_orders(
    state: State,
    user: Consumer,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before_id: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
) -> dict[str, Any]:
    """Own order history, newest first, paged by ``before_id``."""
    sql = (
        "SELECT id, status, subtotal, delivery_fee, credits_applied, total_amount,"
        " amount_charged, delivery_date, delivery_batch_id, created_at FROM orders"
        " WHERE consumer_id = %s"
    )
    params: list[Any] = [user.profile_id]
    if before_id:
        sql += " AND id < %s"
        params.append(before_id)
    sql += " ORDER BY id DESC LIMIT %s"
    params.append(limit)
    async with await state.db.read(user.profile_id) as conn:
        rows = await (await conn.execute(sql, params)).fetchall()
    next_before = rows[-1]["id"] if len(rows) == limit else None
    return {"orders": jsonable(rows), "next_before_id": next_before}


@router.get("/orders/{order_id}", responses=responses(404))
async def order_detail(state: State, user: Consumer, order_id: PathId) -> dict[str, Any]:
    async with await state.db.read(user.profile_id) as conn:
        cur = await conn.execute(
            "SELECT id, consumer_id, status, subtotal, delivery_fee, credits_applied,"
            " total_amount, amount_charged, delivery_date, delivery_batch_id,"
            " stripe_payment_intent_id, created_at FROM orders WHERE id = %s AND consumer_id = %s",
            (order_id, user.profile_id),
        )
        order = await cur.fetchone()
        if order is None:
            raise not_found("order")
        cur = await conn.execute(
            "SELECT oi.product_id, p.name, oi.quantity, oi.unit_price, oi.subtotal"
            " FROM order_items oi JOIN products p ON p.id = oi.product_id"
            " WHERE oi.order_id = %s ORDER BY oi.id",
            (order_id,),
        )
        items = await cur.fetchall()
    return {**jsonable(order), "items": jsonable(items)}
