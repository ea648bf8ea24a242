"""Admin endpoints: batch generation, analytics, job status.

Batch generation runs in the request in phase0/1 (the seed's blocking call) and is
queued on arq from phase2, answering 202 with a job id to poll.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from marketplace import analytics, batches
from marketplace.auth import Principal
from marketplace.deps import get_state, role
from marketplace.errors import ApiError, bad_request, not_found, responses
from marketplace.state import AppState
from marketplace.validation import OperationsDate, analytics_window, clean_query

router = APIRouter(
    tags=["admin"],
    dependencies=[Depends(clean_query)],
    responses=responses(401, 403, 422, 429, 503),
)
State = Annotated[AppState, Depends(get_state)]
Admin = Annotated[Principal, Depends(role("admin"))]


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delivery_date: Annotated[dt.date, OperationsDate]
    """A year back to a year ahead."""


@router.post(
    "/admin/batches/generate",
    responses={202: {"description": "Generation queued (job id to poll)"}, **responses(400, 503)},
)
async def generate(state: State, user: Admin, body: BatchRequest) -> JSONResponse:
    if state.jobs is not None:
        job_id = await state.jobs.enqueue("generate_batches_job", body.delivery_date.isoformat())
        return JSONResponse({"job_id": job_id, "status": "queued"}, status_code=202)
    return JSONResponse(await batches.generate_batches(state, body.delivery_date))


@router.get("/admin/jobs/{job_id}", responses=responses(404))
async def job_status(state: State, user: Admin, job_id: str) -> dict[str, Any]:
    if state.jobs is None:
        raise not_found("job queue (profile has no async jobs)")
    return await state.jobs.status(job_id)


@router.get("/admin/jobs")
async def job_counts(state: State, user: Admin) -> dict[str, Any]:
    if state.jobs is None:
        return {"enabled": False}
    return {"enabled": True, "queued": await state.jobs.sample_depth()}


@router.get("/admin/analytics/daily-revenue", responses=responses(400))
async def daily_revenue(
    state: State,
    user: Admin,
    start: Annotated[dt.date | None, Query(), analytics_window()] = None,
    end: Annotated[dt.date | None, Query(), analytics_window()] = None,
) -> dict[str, Any]:
    end = end or dt.date.today() + dt.timedelta(days=1)
    start = start or end - dt.timedelta(days=30)
    if start > end:
        raise bad_request("invalid_range", "start is after end")
    if (end - start).days > 366:
        raise bad_request("invalid_range", "at most 366 days at once")
    return await analytics.daily_revenue(state, start, end)


@router.get("/admin/analytics/product-performance")
async def product_performance(
    state: State, user: Admin, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    return await analytics.product_performance(state, limit)


@router.post("/admin/analytics/refresh", responses=responses(409))
async def refresh(state: State, user: Admin) -> dict[str, Any]:
    if not state.profile.materialized_views:
        raise ApiError(409, "not_applicable", "this profile reads analytics live")
    await analytics.refresh(state)
    return {"refreshed": ["daily_revenue", "product_performance"]}
