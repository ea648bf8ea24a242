"""The metrics that explain a reproduction, per load step, from a run's own records.

Each is measured inside one steady-state window: counters (running totals sampled at
1 Hz, :mod:`analysis.counters`) are divided by the requests whose start lies between the
window's first and last counter sample, so numerator and denominator cover the same
seconds. ``None`` means "not measured" (counter not sampled, nothing to divide by),
never 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from analysis.counters import counter_over_period, hit_rate, positive_increments
from analysis.runs import Run
from analysis.steps import StepStats

Window = tuple[int, int]


@dataclass(frozen=True)
class Metric:
    """One explaining metric: how to measure it in a window, and how to print it."""

    key: str
    label: str
    unit: str
    measure: Callable[[Run, Window], float | None]
    digits: int = 2
    whole_level: bool = False
    """Count from the end of the previous steady window (the ramp into this level
    included), as the per-step DB connection error criterion does: an error while users
    are added is still one the architecture made at this level."""

    def at(self, run: Run, st: StepStats, level_start_us: int) -> float | None:
        start = level_start_us if self.whole_level else st.step.start_us
        return self.measure(run, (start, st.step.end_us))

    def text(self, value: float | None) -> str:
        if value is None:
            return "not measured"
        if self.unit == "%":
            return f"{value:.{self.digits}%}"
        return f"{value:,.{self.digits}f} {self.unit}".rstrip()


def _series(run: Run, source: str, metric: str, window: Window, labels: dict | None = None):
    s = run.samples
    if s.empty:
        return s
    sel = (s["source"] == source) & (s["metric"] == metric)
    sel &= (s["ts_us"] >= window[0]) & (s["ts_us"] < window[1])
    win = s[sel]
    if labels and not win.empty:
        keep = [all(json.loads(str(lab) or "{}").get(k) == v for k, v in labels.items())
                for lab in win["labels"]]  # fmt: skip
        win = win[np.array(keep, dtype=bool)]
    return win


def _requests(run: Run, start_us: int, end_us: int, endpoint: str | None = None) -> int:
    ev = run.events
    m = (ev.ts_us >= start_us) & (ev.ts_us < end_us)
    if endpoint is not None:
        m &= ev.endpoint.codes == ev.endpoint.code_of(endpoint)
    return int(np.count_nonzero(m))


def per_request(
    source: str, metric: str, endpoint: str | None = None, labels: dict | None = None
) -> Callable[[Run, Window], float | None]:
    """Counter increase per request (of ``endpoint``) over the same seconds."""

    def measure(run: Run, window: Window) -> float | None:
        win = _series(run, source, metric, window, labels)
        delta = positive_increments(win)
        if delta is None or win["ts_us"].nunique() < 2:
            return None
        n = _requests(run, int(win["ts_us"].min()), int(win["ts_us"].max()), endpoint)
        return delta / n if n else None

    return measure


def counted(source: str, metric: str) -> Callable[[Run, Window], float | None]:
    """Counter increase over the window (an exact count: no interval needed), tiled so
    that the levels of one load never both count the second at their boundary."""
    return lambda run, window: counter_over_period(
        run.samples, source, metric, *window, tiled=True
    )[0]


def histogram_mean_ms(family: str) -> Callable[[Run, Window], float | None]:
    """Mean of a Prometheus histogram over the window: Δsum / Δcount, in ms."""

    def measure(run: Run, window: Window) -> float | None:
        total = positive_increments(_series(run, "service", f"{family}_sum", window))
        count = positive_increments(_series(run, "service", f"{family}_count", window))
        return 1000.0 * total / count if total is not None and count else None

    return measure


def cache_hit_rate(run: Run, window: Window) -> float | None:
    return hit_rate(run.samples, *window)[0]


def route_latency_ms(
    routes: tuple[str, ...], q: float = 95
) -> Callable[[Run, Window], float | None]:
    """Percentile ``q`` of the latency of ``routes`` (pooled) from the raw records."""

    def measure(run: Run, window: Window) -> float | None:
        ev = run.events
        codes = [c for c in (ev.endpoint.code_of(r) for r in routes) if c >= 0]
        m = (ev.ts_us >= window[0]) & (ev.ts_us < window[1]) & np.isin(ev.endpoint.codes, codes)
        lat = ev.latency_us[m]
        return float(np.percentile(lat, q, method="inverted_cdf")) / 1000 if lat.size else None

    return measure


DB_CONNECTION_ERRORS = Metric(
    "db_connection_errors",
    "DB connection errors (refused, pool timeout, lost)",
    "",
    counted("service", "db_connection_errors"),
    digits=0,
    whole_level=True,
)
RATE_LIMIT_STATEMENTS = Metric(
    "rate_limit_statements_per_request",
    "DB statements on the rate-limit table per request (pg_stat_statements)",
    "per request",
    per_request("postgres", "rate_limit_statements_total"),
)
RATE_LIMIT_WRITES = Metric(
    "rate_limit_writes_per_request",
    "DB writes (INSERT/DELETE) on the rate-limit table per request",
    "per request",
    per_request("postgres", "rate_limit_writes_total"),
)
RATE_LIMIT_CHECK = Metric(
    "rate_limit_check_ms",
    "rate-limit check latency, mean (service histogram)",
    "ms",
    histogram_mean_ms("marketplace_rate_limit_check_seconds"),
)
STRIPE_CALLS_PER_CHECKOUT = Metric(
    "stripe_calls_per_checkout",
    "Stripe API calls per checkout",
    "per checkout",
    per_request("service", "stripe_calls", endpoint="POST /checkout"),
)
STRIPE_ERRORS = Metric(
    "stripe_errors",
    "Stripe calls failed (429 rate limit and other errors)",
    "",
    lambda run, window: positive_increments(
        _series(run, "service", "marketplace_external_calls_total", window,
                {"service": "stripe", "outcome": "error"})
    ),
    digits=0,
)  # fmt: skip
BATCH_GENERATION_MS = Metric(
    "batch_generation_ms",
    "POST /admin/batches/generate latency, max (how long the caller is held)",
    "ms",
    route_latency_ms(("POST /admin/batches/generate",), q=100),
    digits=0,
    whole_level=True,  # one generation a minute: the ramp's count too
)
CACHE_HIT_RATE = Metric("cache_hit_rate", "cache hit rate", "%", cache_hit_rate, digits=1)
DB_XACTS_PER_REQUEST = Metric(
    "db_transactions_per_request",
    "Postgres transactions per request (reads that reach the database)",
    "per request",
    per_request("postgres", "xact_total"),
)
INDEXED_ROUTES = ("GET /orders", "GET /credits", "GET /driver/batches/[id]", "GET /products")
INDEXED_ROUTES_P95 = Metric(
    "indexed_routes_p95_ms",
    f"P95 of the routes the §3.3 indexes serve ({', '.join(INDEXED_ROUTES)})",
    "ms",
    route_latency_ms(INDEXED_ROUTES),
    digits=0,
)
