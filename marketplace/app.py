"""The ASGI app: built per worker from the profile named in ``LOADGATE_PROFILE``.

``python -m marketplace`` sets that variable and starts uvicorn with
``marketplace.app:create_app`` as a factory, so every worker builds its own pools
and clients after the fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response
from starlette.routing import Match

from marketplace import errors, metrics
from marketplace.config import Settings
from marketplace.limits import HeaderLimits
from marketplace.profiles import DEFAULT_PROFILE, Profile, get_profile
from marketplace.state import AppState, build_state

log = logging.getLogger("marketplace")


def route_template(request: Request) -> str:
    """The matched route's path template: bounded label cardinality for metrics."""
    matched = request.scope.get("route")
    if matched is not None and getattr(matched, "path", None):
        return matched.path
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return getattr(route, "path", "unmatched")
    return "unmatched"


async def _metrics_middleware(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    start = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = route_template(request)
        if route != "/metrics":
            metrics.HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
            metrics.HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - start)


def _exit_with_parent() -> None:
    """A worker ends when the process that started it dies (Linux parent-death signal).

    uvicorn's worker processes would otherwise outlive a SIGKILLed
    supervisor; the load harness promises that nothing outlives it.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _lifespan(state: AppState) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.db.open()
        background: list[asyncio.Task] = []
        if state.profile.async_jobs:
            from marketplace.jobs import JobQueue

            state.jobs = JobQueue(state)
            await state.jobs.start()
        if state.profile.materialized_views and state.settings.analytics_refresh_s > 0:
            from marketplace.analytics import refresh_periodically

            background.append(asyncio.create_task(refresh_periodically(state)))
        _exit_with_parent()
        log.info("worker %s ready (profile %s)", os.getpid(), state.profile.name)
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            if state.jobs is not None:
                await state.jobs.stop()
            await state.router.close()
            await state.db.close()
            if state.redis is not None:
                await state.redis.aclose()

    return lifespan


def build_app(settings: Settings, profile: Profile) -> FastAPI:
    from marketplace.routes import admin, catalogue, consumer, driver, farmer, system

    state = build_state(settings, profile)
    app = FastAPI(
        title="Blue Harvests marketplace (loadgate system under test)",
        version="0.1.0",
        description=f"Architecture profile: {profile.name}",
        lifespan=_lifespan(state),
    )
    app.state.market = state
    errors.install(app)
    app.middleware("http")(_metrics_middleware)
    app.add_middleware(HeaderLimits)  # outermost: before metrics, auth and rate limits
    for module in (system, catalogue, consumer, farmer, driver, admin):
        app.include_router(module.router)
    return app


def create_app() -> FastAPI:
    """uvicorn factory: profile from ``LOADGATE_PROFILE``, settings from the environment."""
    logging.basicConfig(
        level=os.environ.get("LOADGATE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return build_app(
        Settings.from_env(), get_profile(os.environ.get("LOADGATE_PROFILE", DEFAULT_PROFILE))
    )
