"""Driver endpoints: open batches, claim a route, follow and update its stops.

A batch is claimed with a conditional update (``WHERE driver_id IS NULL``): two
drivers racing for it get one 200 and one 409. Stops can only be changed by the
driver who claimed the batch.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict

from marketplace.auth import Principal
from marketplace.deps import ID_MAX, get_state, role
from marketplace.errors import ApiError, forbidden, not_found, responses
from marketplace.serial import jsonable
from marketplace.state import AppState
from marketplace.validation import OperationsDate, clean_query

router = APIRouter(
    tags=["driver"],
    dependencies=[Depends(clean_query)],
    responses=responses(401, 403, 422, 429, 503),
)
State = Annotated[AppState, Depends(get_state)]
Driver = Annotated[Principal, Depends(role("driver"))]
PathId = Annotated[int, Path(ge=1, le=ID_MAX)]


class StopUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["arrived", "delivered", "failed"]


@router.get("/driver/batches")
async def open_batches(
    state: State,
    user: Driver,
    delivery_date: Annotated[dt.date | None, Query(), OperationsDate] = None,
) -> dict[str, Any]:
    """Unclaimed batches (optionally of one date) and the caller's own."""
    sql = (
        "SELECT b.id, b.delivery_date, b.zip_code, b.status, b.driver_id, b.route_method,"
        " b.total_distance_m, b.total_duration_s, count(s.id) AS stops"
        " FROM delivery_batches b LEFT JOIN batch_stops s ON s.delivery_batch_id = b.id"
        " WHERE (b.driver_id IS NULL OR b.driver_id = %s)"
    )
    params: list[Any] = [user.profile_id]
    if delivery_date:
        sql += " AND b.delivery_date = %s"
        params.append(delivery_date)
    sql += " GROUP BY b.id ORDER BY b.id LIMIT 200"
    async with await state.db.read(user.profile_id) as conn:
        rows = await (await conn.execute(sql, params)).fetchall()
    return {"batches": jsonable(rows)}


@router.post("/driver/batches/{batch_id}/claim", responses=responses(404, 409))
async def claim_batch(state: State, user: Driver, batch_id: PathId) -> dict[str, Any]:
    async with state.db.write() as conn:
        cur = await conn.execute(
            "UPDATE delivery_batches SET driver_id = %s, status = 'claimed', claimed_at = now()"
            " WHERE id = %s AND driver_id IS NULL RETURNING id, status, driver_id",
            (user.profile_id, batch_id),
        )
        row = await cur.fetchone()
        if row is None:
            exists = await (
                await conn.execute(
                    "SELECT driver_id FROM delivery_batches WHERE id = %s", (batch_id,)
                )
            ).fetchone()
            if exists is None:
                raise not_found("batch")
            raise ApiError(409, "already_claimed", "batch is already claimed")
    await state.db.note_write(user.profile_id)
    return jsonable(row)


@router.get("/driver/batches/{batch_id}", responses=responses(404))
async def batch_route(state: State, user: Driver, batch_id: PathId) -> dict[str, Any]:
    async with await state.db.read(user.profile_id) as conn:
        cur = await conn.execute(
            "SELECT id, delivery_date, status, driver_id, route_method, total_distance_m,"
            " total_duration_s FROM delivery_batches WHERE id = %s",
            (batch_id,),
        )
        batch = await cur.fetchone()
        if batch is None:
            raise not_found("batch")
        if batch["driver_id"] not in (None, user.profile_id):
            raise forbidden("batch belongs to another driver")
        cur = await conn.execute(
            "SELECT id, order_id, sequence_number, status, address, lon, lat, estimated_arrival"
            " FROM batch_stops WHERE delivery_batch_id = %s ORDER BY sequence_number",
            (batch_id,),
        )
        stops = await cur.fetchall()
    return {**jsonable(batch), "stops": jsonable(stops)}


@router.patch("/driver/batches/{batch_id}/stops/{stop_id}", responses=responses(400, 404))
async def update_stop(
    state: State, user: Driver, batch_id: PathId, stop_id: PathId, body: StopUpdate
) -> dict[str, Any]:
    async with state.db.write() as conn:
        cur = await conn.execute(
            "SELECT driver_id FROM delivery_batches WHERE id = %s FOR UPDATE", (batch_id,)
        )
        batch = await cur.fetchone()
        if batch is None:
            raise not_found("batch")
        if batch["driver_id"] != user.profile_id:
            raise forbidden("claim the batch before updating its stops")
        cur = await conn.execute(
            "UPDATE batch_stops SET status = %s,"
            " delivered_at = CASE WHEN %s = 'delivered' THEN now() ELSE delivered_at END"
            " WHERE id = %s AND delivery_batch_id = %s RETURNING id, order_id, status",
            (body.status, body.status, stop_id, batch_id),
        )
        stop = await cur.fetchone()
        if stop is None:
            raise not_found("stop")
        if body.status == "delivered":
            await conn.execute(
                "UPDATE orders SET status = 'delivered', updated_at = now() WHERE id = %s",
                (stop["order_id"],),
            )
        cur = await conn.execute(
            "SELECT count(*) FILTER (WHERE status IN ('delivered', 'failed')) AS done,"
            " count(*) AS total FROM batch_stops WHERE delivery_batch_id = %s",
            (batch_id,),
        )
        counts = await cur.fetchone()
        batch_status = "completed" if counts["done"] == counts["total"] else "in_progress"
        await conn.execute(
            "UPDATE delivery_batches SET status = %s WHERE id = %s", (batch_status, batch_id)
        )
    await state.db.note_write(user.profile_id)
    return {**jsonable(stop), "batch_status": batch_status}
