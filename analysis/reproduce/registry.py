"""The seed's bottleneck claims as reproductions: before, after, metric, prediction, judge.

Each reproduction changes one thing between its two runs (a profile, or one profile flag
through ``LOADGATE_PROFILE_OVERRIDES``), so a difference between them is that change's.
Its *metric* is what explains the result (DB connection errors, statements per request,
Stripe calls per checkout, ...), measured per step from the run's own records
(:mod:`analysis.reproduce.metrics`); its *judge* compares the two sides' valid steps (the
steps below the load at which the machine saturated, :mod:`analysis.reproduce.verdict`)
against the seed's prediction and says confirmed or refuted, or inconclusive with why.
Thresholds are the seed's numbers; where a judge needs a tolerance, it says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from analysis.reproduce import metrics as m
from analysis.reproduce.metrics import Metric
from analysis.reproduce.outcome import Outcome, SideResult, Verdict


@dataclass(frozen=True)
class Side:
    """One configuration: an architecture profile plus single-flag overrides."""

    profile: str
    overrides: dict[str, object] = field(default_factory=dict)

    def describe(self) -> str:
        flags = ", ".join(f"{k}={json.dumps(v)}" for k, v in self.overrides.items())
        return f"{self.profile} + {flags}" if flags else self.profile

    def env_value(self) -> str | None:
        """``LOADGATE_PROFILE_OVERRIDES`` for this side (None: no override)."""
        return json.dumps(self.overrides, sort_keys=True) if self.overrides else None


Judge = Callable[[SideResult, SideResult], Outcome]


@dataclass(frozen=True)
class Reproduction:
    name: str
    section: str  # seed section, e.g. "§3.1"
    description: str  # one line for --list
    claim: str  # the seed's claim, in its words where possible
    prediction: str  # what the seed predicts, to print beside the measurement
    before: Side
    after: Side
    metrics: tuple[Metric, ...]  # the first one explains; the others support it
    judge: Judge

    @property
    def metric(self) -> Metric:
        return self.metrics[0]


def _mean(pairs: list[tuple[float, float]]) -> float | None:
    return sum(v for _, v in pairs) / len(pairs) if pairs else None


def _not_measured(side: SideResult, metric: Metric) -> Outcome:
    return Outcome(
        Verdict.INCONCLUSIVE,
        f"{metric.label} was not measured on the {side.label} side's valid steps "
        "(counter not sampled, or no request to divide by)",
    )


# --- judges ---------------------------------------------------------------------------

PREDICTED_BREAK_USERS = 1000  # seed §1.1: 15 connections "~1K users"


def _db_connections(before: SideResult, after: SideResult) -> Outcome:
    key = m.DB_CONNECTION_ERRORS.key
    b, a = before.values(key), after.values(key)
    if not b:
        return _not_measured(before, m.DB_CONNECTION_ERRORS)
    if not a:
        return _not_measured(after, m.DB_CONNECTION_ERRORS)
    b_err = [(load, v) for load, v in b if v > 0]
    if b_err:
        load, count = b_err[0]
        a_upto = [(lo, v) for lo, v in a if lo <= load]
        if not a_upto or max(lo for lo, _ in a_upto) < load:
            return Outcome(
                Verdict.INCONCLUSIVE,
                f"{before.configuration} ran out of DB connections at {load:,.0f} users "
                f"({count:,.0f} errors), but {after.saturation_text()} before that load",
            )
        a_err = [(lo, v) for lo, v in a_upto if v > 0]
        if a_err:
            return Outcome(
                Verdict.REFUTED,
                f"{after.configuration} had DB connection errors too ({a_err[0][1]:,.0f} at "
                f"{a_err[0][0]:,.0f} users): pooling did not remove them",
            )
        return Outcome(
            Verdict.CONFIRMED,
            f"{before.configuration} had {count:,.0f} DB connection errors from "
            f"{load:,.0f} users; {after.configuration} had none up to that load (seed: "
            f"~{PREDICTED_BREAK_USERS:,} users on its hardware)",
        )
    top = max(lo for lo, _ in b)
    if before.breaking.saturated_at is not None:
        return Outcome(
            Verdict.INCONCLUSIVE,
            f"no DB connection error on {before.configuration} up to {top:,.0f} users, and "
            f"{before.saturation_text()}: the machine gave out before the connections did",
        )
    if top >= PREDICTED_BREAK_USERS:
        return Outcome(
            Verdict.REFUTED,
            f"no DB connection error on {before.configuration} up to {top:,.0f} users "
            f"(seed: exhausted at ~{PREDICTED_BREAK_USERS:,})",
        )
    return Outcome(
        Verdict.INCONCLUSIVE,
        f"no DB connection error on {before.configuration} up to {top:,.0f} users, below "
        f"the seed's ~{PREDICTED_BREAK_USERS:,}: raise users in [reproduce.db-connections]",
    )


STATEMENTS_PER_CHECK = 3.0  # seed §3.2 "3 database operations per API request"
STATEMENTS_TOLERANCE = 0.5  # counter samples and request starts differ by < 1 s per window
CHECK_LATENCY_MS = 5.0  # seed §3.2 "<5ms rate limit check latency"


def _rate_limit_writes(before: SideResult, after: SideResult) -> Outcome:
    key, lat_key = m.RATE_LIMIT_STATEMENTS.key, m.RATE_LIMIT_CHECK.key
    b, a = _mean(before.values(key)), _mean(after.values(key))
    if b is None:
        return _not_measured(before, m.RATE_LIMIT_STATEMENTS)
    if a is None:
        return _not_measured(after, m.RATE_LIMIT_STATEMENTS)
    latency = after.values(lat_key)
    if not latency:
        return _not_measured(after, m.RATE_LIMIT_CHECK)
    said = (
        f"{b:.2f} rate-limit statements per request on {before.configuration}, {a:.2f} on "
        f"{after.configuration}"
    )
    if abs(b - STATEMENTS_PER_CHECK) > STATEMENTS_TOLERANCE:
        return Outcome(Verdict.REFUTED, f"{said}: the seed says {STATEMENTS_PER_CHECK:g}")
    if a > 0.05:
        return Outcome(Verdict.REFUTED, f"{said}: the seed says zero with Redis")
    low_load, low_ms = latency[0]
    top_load, top_ms = latency[-1]
    at = f"Redis check {low_ms:.2f} ms at {low_load:,.0f} users, {top_ms:.2f} ms at {top_load:,.0f}"
    if low_ms >= CHECK_LATENCY_MS:
        return Outcome(
            Verdict.REFUTED, f"{said}; but {at} (mean): the seed says < {CHECK_LATENCY_MS:g} ms"
        )
    return Outcome(Verdict.CONFIRMED, f"{said}; {at} (mean; seed: < {CHECK_LATENCY_MS:g} ms)")


INDEX_GAIN = 0.20  # ours: a P95 at least 20 % lower is a difference, not run-to-run noise


def _indexes(before: SideResult, after: SideResult) -> Outcome:
    key = m.INDEXED_ROUTES_P95.key
    b, a = dict(before.values(key)), dict(after.values(key))
    common = sorted(set(b) & set(a))
    if not common:
        return Outcome(
            Verdict.INCONCLUSIVE,
            "no load step where both sides measured the indexed routes before the machine "
            "saturated",
        )
    load = common[-1]
    gain = 1 - a[load] / b[load] if b[load] else 0.0
    said = (
        f"P95 of the indexed routes at {load:,.0f} users: {b[load]:,.0f} ms without the §3.3 "
        f"indexes, {a[load]:,.0f} ms with them ({gain:+.0%} lower)"
    )
    if gain >= INDEX_GAIN:
        return Outcome(Verdict.CONFIRMED, said)
    if gain <= 0:
        return Outcome(Verdict.REFUTED, f"{said}: the indexes did not help at this data size")
    return Outcome(
        Verdict.INCONCLUSIVE, f"{said}: less than the {INDEX_GAIN:.0%} that separates noise"
    )


STRIPE_REDUCTION = 0.40  # seed §4.4 "50% reduction in Stripe API calls", less first lookups


def _stripe_limits(before: SideResult, after: SideResult) -> Outcome:
    key = m.STRIPE_CALLS_PER_CHECKOUT.key
    b, a = _mean(before.values(key)), _mean(after.values(key))
    if b is None:
        return _not_measured(before, m.STRIPE_CALLS_PER_CHECKOUT)
    if a is None:
        return _not_measured(after, m.STRIPE_CALLS_PER_CHECKOUT)
    cut = 1 - a / b if b else 0.0
    errors = sum(v for _, v in before.values(m.STRIPE_ERRORS.key))
    said = (
        f"{b:.2f} Stripe calls per checkout on {before.configuration}, {a:.2f} with customer "
        f"caching ({cut:.0%} fewer; seed: 50 %); {errors:,.0f} failed Stripe calls before"
    )
    if cut >= STRIPE_REDUCTION:
        return Outcome(Verdict.CONFIRMED, said)
    return Outcome(Verdict.REFUTED, said)


BATCH_SPEEDUP = 3.0  # ours: a queued answer at least 3x faster than the blocking one


def _batch_generation(before: SideResult, after: SideResult) -> Outcome:
    key = m.BATCH_GENERATION_MS.key
    b, a = before.values(key), after.values(key)
    if not b or not a:
        side = before if not b else after
        return Outcome(
            Verdict.INCONCLUSIVE,
            f"no batch generation request in the {side.label} side's valid steady windows "
            "(one runs every batch_interval_s): lengthen the holds in "
            "[reproduce.batch-generation]",
        )
    worst_b, worst_a = max(v for _, v in b), max(v for _, v in a)
    said = (
        f"the longest batch generation request held its caller {worst_b:,.0f} ms on "
        f"{before.configuration}, {worst_a:,.0f} ms queued"
    )
    if worst_a * BATCH_SPEEDUP <= worst_b:
        return Outcome(Verdict.CONFIRMED, said)
    return Outcome(Verdict.REFUTED, f"{said}: queueing did not free the caller")


HIT_RATE = 0.80  # seed §4.2 "80% cache hit rate"


def _caching(before: SideResult, after: SideResult) -> Outcome:
    hits = after.values(m.CACHE_HIT_RATE.key)
    if not hits:
        return _not_measured(after, m.CACHE_HIT_RATE)
    rate = _mean(hits) or 0.0
    xb = _mean(before.values(m.DB_XACTS_PER_REQUEST.key))
    xa = _mean(after.values(m.DB_XACTS_PER_REQUEST.key))
    db = (
        f"; Postgres transactions per request {xb:.2f} → {xa:.2f} (seed: 50 % fewer queries)"
        if xb and xa is not None
        else ""
    )
    said = f"cache hit rate {rate:.1%} on {after.configuration} (seed: ≥ {HIT_RATE:.0%}){db}"
    return Outcome(Verdict.CONFIRMED if rate >= HIT_RATE else Verdict.REFUTED, said)


REPRODUCTIONS: dict[str, Reproduction] = {
    r.name: r
    for r in (
        Reproduction(
            "db-connections",
            "§3.1",
            "15 direct DB connections run out under load; PgBouncer pooling removes the errors",
            "The 15 connection limit is exhausted at ~1K users (total outage); connection "
            "pooling supports 1,000+ concurrent connections.",
            "phase0 fails on DB connection errors at ~1,000 users; phase1 has none",
            Side("phase0"),
            Side("phase1"),
            (m.DB_CONNECTION_ERRORS,),
            _db_connections,
        ),
        Reproduction(
            "rate-limit-writes",
            "§3.2",
            "DB-table rate limiting costs 3 statements per request; Redis costs none, < 5 ms",
            "3 database operations per API request; Redis rate limiting: zero database "
            "writes, < 5 ms check latency (vs 50 ms database).",
            "3 rate-limit statements per request before, 0 after; Redis checks < 5 ms",
            Side("phase1", {"rate_limiter": "db_table"}),
            Side("phase1"),
            (m.RATE_LIMIT_STATEMENTS, m.RATE_LIMIT_WRITES, m.RATE_LIMIT_CHECK),
            _rate_limit_writes,
        ),
        Reproduction(
            "indexes",
            "§3.3",
            "the scaling indexes keep hot queries fast as data grows (phase1 with vs without)",
            "Missing indexes cause full table scans under load; with them, < 100 ms query "
            "times for all hot paths.",
            "hot paths (orders, credits, driver routes, product list) faster with the indexes",
            Side("phase1", {"skip_migrations": ["0002"]}),
            Side("phase1"),
            (m.INDEXED_ROUTES_P95,),
            _indexes,
        ),
        Reproduction(
            "stripe-limits",
            "§4.4",
            "Stripe customer caching halves Stripe calls per checkout (100 req/s limit)",
            "Stripe API calls are slow (200-500 ms) and rate-limited (100 req/s); caching "
            "customer ids gives a 50 % reduction in Stripe API calls.",
            "50 % fewer Stripe calls per checkout with customer caching",
            Side("phase1"),
            Side("phase1", {"stripe_customer_cache": True}),
            (m.STRIPE_CALLS_PER_CHECKOUT, m.STRIPE_ERRORS),
            _stripe_limits,
        ),
        Reproduction(
            "batch-generation",
            "§4.3",
            "synchronous batch generation holds its request; a job queue answers at once",
            "Long-running operations (batch generation, payouts) block API responses; "
            "enqueue the job and return immediately.",
            "the generate request returns immediately when queued",
            Side("phase1"),
            Side("phase1", {"async_jobs": True}),
            (m.BATCH_GENERATION_MS,),
            _batch_generation,
        ),
        Reproduction(
            "caching",
            "§4.2",
            "the Redis cache reaches the seed's 80 % hit rate and takes reads off Postgres",
            "80 % cache hit rate; 50 % reduction in database queries.",
            "hit rate ≥ 80 %, half the database queries",
            Side("phase1"),
            Side("phase1", {"cache": True}),
            (m.CACHE_HIT_RATE, m.DB_XACTS_PER_REQUEST),
            _caching,
        ),
    )
}


class UnknownReproduction(ValueError):
    """A name that is not in :data:`REPRODUCTIONS`."""


def get(name: str) -> Reproduction:
    try:
        return REPRODUCTIONS[name]
    except KeyError:
        raise UnknownReproduction(
            f"unknown reproduction {name!r}: choose one of {', '.join(REPRODUCTIONS)}"
        ) from None
