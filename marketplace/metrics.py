"""Prometheus metrics of the service, multiprocess-safe.

``python -m marketplace`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory
before the workers start, so every worker writes its samples there and ``/metrics``
(answered by any one worker) aggregates all of them. Gauges therefore declare how
they combine across workers (``livesum``: only live processes count).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "marketplace_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "marketplace_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=_SLOW,
)
DB_POOL_IN_USE = Gauge(
    "marketplace_db_pool_in_use",
    "DB connections checked out",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "marketplace_db_pool_waiting",
    "Requests waiting for a DB connection",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "marketplace_db_pool_max_size",
    "Configured pool maximum",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_ACQUIRE = Histogram(
    "marketplace_db_pool_acquire_seconds",
    "Request start to a usable DB connection (pool wait + BEGIN through the proxy)",
    ["pool"],
    buckets=_FAST,
)
DB_HOLD = Histogram(
    "marketplace_db_connection_hold_seconds",
    "How long a request keeps its DB connection (mode: transaction or statements)",
    ["pool", "mode"],
    buckets=_FAST,
)
DB_CONNECTION_ERRORS = Counter(
    "marketplace_db_connection_errors_total",
    "DB connections refused, timed out or lost",
    ["pool", "kind"],
)
RATE_LIMIT_DECISIONS = Counter(
    "marketplace_rate_limit_decisions_total", "Rate-limit decisions", ["backend", "decision"]
)
RATE_LIMIT_LATENCY = Histogram(
    "marketplace_rate_limit_check_seconds", "Rate-limit check latency", ["backend"], buckets=_FAST
)
CACHE_REQUESTS = Counter("marketplace_cache_requests_total", "Cache lookups", ["family", "result"])
QUEUE_JOBS = {
    outcome: Gauge(
        f"marketplace_queue_jobs_{outcome}_total",
        f"Jobs {outcome} since the queue began (the queue's own counter in Redis)",
        ["queue"],
        multiprocess_mode="mostrecent",
    )
    for outcome in ("enqueued", "completed", "failed", "retried")
}
"""Running totals read from the queue's Redis hash at each scrape (``marketplace.jobs``):
every worker exports the same numbers, so the most recent value is the total."""
QUEUE_DEPTH = Gauge(
    "marketplace_queue_depth",
    "Jobs waiting in the queue (sampled)",
    ["queue"],
    multiprocess_mode="mostrecent",
)
BREAKER_STATE = Gauge(
    "marketplace_circuit_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open (worst worker)",
    ["breaker"],
    multiprocess_mode="livemax",
)
EXTERNAL_CALLS = Counter(
    "marketplace_external_calls_total",
    "Calls to Stripe and OSRM",
    ["service", "operation", "outcome"],
)
EXTERNAL_LATENCY = Histogram(
    "marketplace_external_call_seconds",
    "Latency of calls to Stripe and OSRM",
    ["service", "operation"],
    buckets=_SLOW,
)
CHECKOUTS = Counter("marketplace_checkouts_total", "Checkouts by outcome", ["outcome"])
REDIS_FALLBACKS = Counter(
    "marketplace_redis_fallbacks_total",
    "Redis calls that failed or were skipped (breaker open) and fell back",
    ["part"],
)
BATCH_ROUTING = Counter(
    "marketplace_batch_routing_total",
    "Delivery batches routed, by method (osrm_trip or the haversine fallback)",
    ["method"],
)

BREAKER_STATES = {"closed": 0, "half-opened": 1, "opened": 2}


@contextmanager
def external_call(service: str, operation: str) -> Iterator[None]:
    """Count and time one Stripe/OSRM call; the outcome label is ok or error."""
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        EXTERNAL_CALLS.labels(service, operation, "error").inc()
        raise
    else:
        EXTERNAL_CALLS.labels(service, operation, "ok").inc()
    finally:
        EXTERNAL_LATENCY.labels(service, operation).observe(time.perf_counter() - start)


def render() -> tuple[bytes, str]:
    """The exposition text: all workers' samples in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (called by the parent on worker exit)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
