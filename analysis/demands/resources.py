"""What the demand estimate measures: the resources (which sampled metric gives each busy
rate), the estimate's constants, and the result types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from analysis.steps import Step
from runformat.metrics import (
    CACHE_HITS,
    CPU_PERCENT,
    KEYSPACE_HITS,
    OSRM_CALLS,
    STRIPE_CALLS,
    TOTAL_COMMANDS_PROCESSED,
    TOTAL_XACT_COUNT,
    TOTAL_XACT_TIME,
    XACT_TOTAL,
)

#: Routes below this share of the steady-state requests are pooled ("other routes").
MIN_ROUTE_SHARE = 0.02


OTHER = "other routes"


OPERATIONS = "operations"


ALL_USERS = "all users"


CONFIDENCE = 0.95


#: Fewest sample intervals a resource regression is attempted with.
MIN_SECONDS = 8


#: Per-route demands need this many intervals per coefficient; with fewer, only the
#: pooled (all routes) demand is estimated and every route gets it (said in a note).
PER_ROUTE_INTERVALS = 10


@dataclass(frozen=True)
class ResourceSpec:
    """One resource: where its samples are and what one request's demand is measured in."""

    key: str
    label: str
    kind: str  # "gauge" (a level, e.g. cpu_percent) | "counter" (a running total)
    candidates: tuple[tuple[str, str], ...]  # (source, metric), first found wins
    scale: float  # sample unit -> rate unit (cpu_percent / 100 = cores busy)
    rate_unit: str  # busy rate: "cores", "req/s", "connections", ...
    demand_unit: str  # one request's demand, after ``display``
    display: float = 1.0  # demand (rate_unit x s per request) x display = demand_unit


def _cpu(key: str, label: str, *candidates: tuple[str, str]) -> ResourceSpec:
    return ResourceSpec(key, f"{label} CPU", "gauge", candidates, 0.01, "cores", "CPU ms", 1000.0)


RESOURCES: tuple[ResourceSpec, ...] = (
    _cpu("service_cpu", "service", ("process:marketplace", CPU_PERCENT), ("service", CPU_PERCENT)),
    _cpu("postgres_cpu", "Postgres", ("process:postgres", CPU_PERCENT), ("postgres", CPU_PERCENT)),
    _cpu("replica_cpu", "Postgres replica", ("process:replica", CPU_PERCENT)),
    _cpu("pgbouncer_cpu", "PgBouncer", ("process:pgbouncer", CPU_PERCENT)),
    _cpu("redis_cpu", "Redis", ("process:redis", CPU_PERCENT)),
    _cpu("stripe_cpu", "Stripe mock", ("process:stripe", CPU_PERCENT)),
    _cpu("osrm_cpu", "OSRM", ("process:osrm", CPU_PERCENT)),
    ResourceSpec(
        "db_xacts",
        "DB transactions",
        "counter",
        (("pgbouncer", TOTAL_XACT_COUNT), ("postgres", XACT_TOTAL)),
        1.0,
        "xact/s",
        "transactions",
    ),
    ResourceSpec(
        "db_hold",
        "DB connection hold (service side)",
        "counter",
        (("service", "marketplace_db_connection_hold_seconds_sum"),),
        1.0,
        "connections",  # connection-seconds per second = connections in use (Little's law)
        "connection-ms",
        1000.0,
    ),
    ResourceSpec(
        "server_hold",
        "PgBouncer server-connection time",
        "counter",
        (("pgbouncer", TOTAL_XACT_TIME),),
        1e-6,  # µs
        "connections",
        "connection-ms",
        1000.0,
    ),
    ResourceSpec(
        "stripe_calls",
        "Stripe calls",
        "counter",
        (("service", STRIPE_CALLS),),
        1.0,
        "req/s",
        "calls",
    ),
    ResourceSpec(
        "osrm_calls", "OSRM calls", "counter", (("service", OSRM_CALLS),), 1.0, "req/s", "calls"
    ),
    ResourceSpec(
        "redis_ops",
        "Redis operations",
        "counter",
        (("redis", TOTAL_COMMANDS_PROCESSED),),
        1.0,
        "ops/s",
        "ops",
    ),
    ResourceSpec(
        "cache_hits",
        "cache hits",
        "counter",
        (("service", CACHE_HITS), ("redis", KEYSPACE_HITS)),
        1.0,
        "hits/s",
        "hits",
    ),
)


RESOURCE_BY_KEY = {r.key: r for r in RESOURCES}


#: Asked for by issue 13 and never sampled by loadgate's samplers (loadgate/samplers/).
NOT_SAMPLED = (
    "network bytes per service (only response bytes per request, from the events)",
    "disk I/O per service",
    "per-query Postgres CPU (pg_stat_statements is on but not sampled)",
)


@dataclass
class ResourceDemand:
    """One resource's fitted demands: ``busy = background + Σ_r X_r · demand_r``."""

    spec: ResourceSpec
    source: str
    metric: str
    routes: list[str]
    demand: np.ndarray  # per route group, rate_unit·s per request
    demand_ci: np.ndarray  # shape (k, 2)
    background: float  # rate_unit, whatever the load
    background_ci: tuple[float, float]
    cov: np.ndarray  # HAC covariance of (background, demand...)
    per_request: float  # one-class model: all routes pooled
    per_request_ci: tuple[float, float]
    r2: float
    seconds: int
    maxlags: int
    mean_busy: float  # mean busy rate over the fitted seconds
    notes: list[str] = field(default_factory=list)

    @property
    def params(self) -> np.ndarray:
        return np.concatenate([[self.background], self.demand])

    def predict(self, x: np.ndarray) -> float:
        """Busy rate at route-group throughputs ``x`` (req/s, in ``routes`` order)."""
        return float(self.background + np.asarray(x, dtype=float) @ self.demand)

    def predict_ci(self, x: np.ndarray) -> tuple[float, float]:
        """95 % interval of the busy rate (parameter uncertainty, delta method: exact for a
        linear model)."""
        a = np.concatenate([[1.0], np.asarray(x, dtype=float)])
        point = float(a @ self.params)
        se = math.sqrt(max(float(a @ self.cov @ a), 0.0))
        z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
        return point - z * se, point + z * se

    def draws(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Parameter draws (n, 1 + routes) from the asymptotic normal of the estimate."""
        return rng.multivariate_normal(self.params, self.cov, size=n, check_valid="ignore")


@dataclass
class PersonaRate:
    """Requests per second of one user of a persona (``fixed``: of the whole persona)."""

    persona: str
    weight: float  # share of users (0 for the fixed operations user)
    rate: float
    ci: tuple[float, float]
    route_share: dict[str, float]  # route group -> share of this persona's requests
    fixed: bool = False


@dataclass
class LevelModel:
    """A level that grows with users, not throughput (Redis memory): value = a + b·users."""

    label: str
    unit: str
    intercept: float
    slope: float  # per user
    slope_ci: tuple[float, float]
    cov: np.ndarray
    points: list[tuple[float, float]]  # (users, mean value) per step

    def predict(self, users: float) -> float:
        return self.intercept + self.slope * users


@dataclass
class StepLevel:
    """What one steady-state step measured, for charts and the backtest."""

    run_id: str
    step: Step
    users: float
    throughput: float
    route_x: np.ndarray  # per route group, req/s
    busy: dict[str, float]  # resource key -> mean busy rate


@dataclass
class Demands:
    """Everything issue 13 item 1 asks of one run (or several pooled)."""

    run_ids: list[str]
    routes: list[str]
    route_share: dict[str, float]
    resources: list[ResourceDemand]
    personas: list[PersonaRate]
    bytes_per_request: dict[str, float]
    memory: LevelModel | None
    think_mean_s: float
    cycle_s: float  # users / throughput over the steady steps (response + think)
    per_user_trend: float | None  # relative change of per-user rate, lowest -> highest step
    levels: list[StepLevel]
    missing: list[str]
    warnings: list[str] = field(default_factory=list)

    def resource(self, key: str) -> ResourceDemand | None:
        return next((r for r in self.resources if r.spec.key == key), None)

    @property
    def top_users(self) -> float:
        return max((lv.users for lv in self.levels), default=0.0)


class DemandError(ValueError):
    """The run cannot give demands (no steady-state step with records)."""
