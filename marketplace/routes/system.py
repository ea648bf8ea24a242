"""Health, active profile, Prometheus metrics (no auth, no rate limit).

``GET /_loadgate/fault`` raises an unexpected exception when the service runs with
``LOADGATE_FAULT_ROUTES=1`` (tests of the 500 path; 404 otherwise, and never in the
OpenAPI schema).
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import PlainTextResponse

from marketplace import metrics
from marketplace.deps import get_state
from marketplace.errors import not_found
from marketplace.state import AppState

router = APIRouter(tags=["system"])
QUEUE_SAMPLE_TIMEOUT_S = 1.0
State = Annotated[AppState, Depends(get_state)]


@router.get("/health")
async def health(state: State) -> dict[str, Any]:
    return {"status": "ok", "profile": state.profile.name}


@router.get("/profile")
async def active_profile(state: State) -> dict[str, Any]:
    """The active architecture profile and its flags (recorded by run manifests)."""
    return state.profile.as_dict()


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus_metrics(state: State) -> Response:
    if state.jobs is not None:
        try:  # bounded: a frozen Redis must not take the service's metrics with it
            await asyncio.wait_for(state.jobs.sample_depth(), QUEUE_SAMPLE_TIMEOUT_S)
        except Exception:  # Redis down: the other series still answer (queue gauges stale)
            metrics.REDIS_FALLBACKS.labels("metrics").inc()
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


FAULTS_ENV = "LOADGATE_FAULT_ROUTES"


@router.get("/_loadgate/fault", include_in_schema=False)
async def fault() -> None:
    """A real unhandled exception, for tests that the 500 path keeps connections."""
    if os.environ.get(FAULTS_ENV) != "1":
        raise not_found("route")
    raise RuntimeError(f"fault injected on request ({FAULTS_ENV}=1)")
