"""The seed's own numbers the capacity plan is set beside (issue 13, item 4).

Two things from the Blue Harvests scaling plan ("Scaling Blue Harvests to 100,000
Concurrent Users", November 2025):

* ``calculate_capacity``: §6.5's ``calculateCapacity`` as written (TypeScript), with
  JavaScript's arithmetic (x / 0 is Infinity, so a run without errors has an infinite
  "error capacity").
* ``SEED_PHASES``: the per-phase infrastructure of §7 (§7.1 cost by phase, §7.2 the phase-4
  breakdown) with the capacities the phase sections state (§1.1, §3.1, §3.2, §4.1, §4.2,
  §4.4, §4.5, §6.3).  Every number cites its section; where the seed is silent the
  capacity is absent (never guessed) and the plan says "not stated in the seed".

Kept apart from the plan's arithmetic because it is data about a document, not a method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from runconfig.constants import HPA_TARGET_UTILISATION as HPA_TARGET_UTILISATION  # §6.3

#: t3.xlarge (4 vCPU) and c5.2xlarge (8 vCPU) are AWS's published sizes; the seed names
#: only the instance types (§6.3, §7.2).
T3_XLARGE_VCPU = 4
C5_2XLARGE_VCPU = 8


@dataclass(frozen=True)
class SeedCapacity:
    """A capacity the seed states for a phase, in the plan resource's unit."""

    amount: float
    section: str
    note: str = ""


@dataclass(frozen=True)
class SeedPhase:
    phase: int
    milestone: str  # §8.4 (its users and gate load: the phase config, config/phases.toml)
    monthly_cost_usd: int  # §7.1
    infrastructure: str  # what §7 / the phase section plans
    capacities: dict[str, SeedCapacity] = field(default_factory=dict)
    #: The seed assumption a requirement above its capacity contradicts, per resource.
    assumptions: dict[str, str] = field(default_factory=dict)


_STRIPE = SeedCapacity(100.0, "§1.1, §4.4", "Stripe's API rate limit, 100 req/s")
_POOL = SeedCapacity(1000.0, "§3.1", "PgBouncer max_connections = 1,000")
_REDIS_OPS = SeedCapacity(10_000.0, "§3.2", '"Support 10K requests/second rate limit checks"')
_REDIS_10GB = SeedCapacity(10 * 2**30, "§4.2, §7.2", "Upstash Redis Pro, 10 GB")
_OSRM = SeedCapacity(2.0, "§4.5", "one EC2 t3.large (2 vCPU)")
_PRIMARY = SeedCapacity(8.0, "§7.2", "Supabase Pro primary, 8 CPU (size given only in §7.2)")

ASSUMPTIONS = {
    "stripe_rps": "that Stripe customer caching (§4.4) keeps payment traffic under Stripe's "
    "100 req/s",
    "db_connections": "that a pool of 1,000 connections (§3.1) is enough for the phase",
    "postgres_cores": "that replicas, caching and sharding (§4.1, §4.2, §6.2) keep the "
    "database within the instances planned",
    "service_cores": "that the compute of §7.2 (20 t3.xlarge + 10 c5.2xlarge) carries the service",
    "osrm_cores": "that one 2-vCPU OSRM server (§4.5) is enough",
    "redis_ops": "that Redis answers the rate-limit checks at 10K req/s (§3.2)",
    "redis_memory": "that a 10 GB Redis (§4.2) holds the cache and rate-limit keys",
}

SEED_PHASES: dict[int, SeedPhase] = {
    0: SeedPhase(
        0,
        "M0 (baseline)",
        500,
        "Supabase edge functions with 15 direct DB connections, one Postgres, no cache (§1.2)",
        {"db_connections": SeedCapacity(15.0, "§1.1", "15 DB connections")},
    ),
    1: SeedPhase(
        1,
        "M1",
        640,
        "PgBouncer 1,000 connections (§3.1), Redis rate limiting (§3.2), indexes (§3.3), "
        "CDN (§3.4), pagination (§3.5); one primary",
        {
            "db_connections": _POOL,
            "stripe_rps": _STRIPE,
            "redis_ops": _REDIS_OPS,
            "postgres_cores": _PRIMARY,
        },
    ),
    2: SeedPhase(
        2,
        "M2",
        1_280,
        "+ 2 read replicas (§4.1), Redis cache 10 GB (§4.2), job queue (§4.3), Stripe customer "
        "caching (§4.4), OSRM on a t3.large (§4.5)",
        {
            "db_connections": _POOL,
            "stripe_rps": _STRIPE,
            "redis_ops": _REDIS_OPS,
            "redis_memory": _REDIS_10GB,
            "osrm_cores": _OSRM,
            "postgres_cores": SeedCapacity(
                24.0, "§4.1, §7.2", "primary + 2 replicas, counted at the primary's 8 CPU each"
            ),
        },
    ),
    3: SeedPhase(
        3,
        "M3",
        2_680,
        "+ 3 regions, replicas in US-East and EU-West (§5.1), global CDN (§5.2), "
        "partitioning (§5.3), materialized views (§5.4), circuit breakers (§5.5)",
        {
            "db_connections": _POOL,
            "stripe_rps": _STRIPE,
            "redis_ops": _REDIS_OPS,
            "redis_memory": _REDIS_10GB,
            "osrm_cores": _OSRM,
            "postgres_cores": SeedCapacity(
                24.0, "§5.1, §7.2", "primary + 2 regional replicas at 8 CPU each"
            ),
        },
    ),
    4: SeedPhase(
        4,
        "M4",
        20_880,
        "§7.2: primary 8 CPU/32 GB, 3 read replicas, 8 shards; Redis 10 GB; EKS with 20 "
        "t3.xlarge + 10 c5.2xlarge; microservices (§6.1), HPA at 70 % CPU (§6.3)",
        {
            "db_connections": _POOL,
            "stripe_rps": _STRIPE,
            "redis_ops": _REDIS_OPS,
            "redis_memory": _REDIS_10GB,
            "osrm_cores": _OSRM,
            "postgres_cores": SeedCapacity(
                96.0,
                "§7.2",
                "12 databases (1 primary + 3 replicas + 8 shards) at $400 each, the price of "
                "the 8-CPU primary: 8 CPU each",
            ),
            "service_cores": SeedCapacity(
                float(20 * T3_XLARGE_VCPU + 10 * C5_2XLARGE_VCPU),
                "§6.3, §7.2",
                "20 t3.xlarge (4 vCPU) + 10 c5.2xlarge (8 vCPU) = 160 vCPU",
            ),
        },
    ),
}
for _p in SEED_PHASES.values():
    _p.assumptions.update(ASSUMPTIONS)


@dataclass
class SeedFormula:
    """§6.5 ``calculateCapacity`` on one run's highest steady step."""

    max_users: float
    p95_ms: float | None
    error_rate: float
    cpu_usage: float | None  # percent, as the seed's LoadTestResult.cpuUsage
    cpu_source: str
    cpu_capacity: float | None
    latency_capacity: float | None
    error_capacity: float | None
    result: float | None
    notes: list[str]


def js_div(a: float, b: float) -> float:
    """JavaScript's a / b: ±Infinity for a non-zero a over 0, NaN for 0 / 0."""
    if b == 0:
        return math.nan if a == 0 else math.copysign(math.inf, a)
    return a / b


def calculate_capacity(
    max_users: float, p95_ms: float | None, error_rate: float, cpu_usage: float | None
) -> tuple[float | None, float | None, float | None, float | None]:
    """The seed's formula (§6.5), term by term; None where an input is unknown.

    ``cpuCapacity = (100 - cpu) / cpu * maxUsers`` is the headroom *beyond* maxUsers under
    linear scaling, not a capacity (that would be 100 / cpu * maxUsers); the seed takes the
    minimum of it and two true capacities.  Kept as written: the point is to show it.
    """
    cpu = None if cpu_usage is None else js_div(100 - cpu_usage, cpu_usage) * max_users
    lat = None if not p95_ms else js_div(2000.0, p95_ms) * max_users
    err = js_div(0.01, error_rate) * max_users
    terms = [t for t in (cpu, lat, err) if t is not None]
    result = min(terms) if terms and not any(math.isnan(t) for t in terms) else None
    return cpu, lat, err, result
