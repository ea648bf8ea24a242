"""What a capacity plan is made of: its resources, projections, milestones, backtests,
and the constants of the method (planning utilisation, draws, tested range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analysis import demands as dm
from analysis import seed_plan
from analysis.generator_sizing import GeneratorSizing

PLANNING_UTILISATION = seed_plan.HPA_TARGET_UTILISATION
DRAWS = 4000
MILESTONE_PHASES = (1, 2, 3, 4)
#: Beyond this multiple of the highest measured load the linearity was never tested
#: (the run reports print no model number there): said beside every such projection.
TESTED_RANGE = 3.0
#: Share of the run's own capacity below which a backtest row is not in the headline error.
MATERIAL = 0.02
#: A backtest error above this marks every milestone's projection unreliable (issue 20).
RELIABLE_BACKTEST_ERROR = 0.20


@dataclass(frozen=True)
class PlanResource:
    """A row of the plan: which demand drives it and how it is compared."""

    key: str
    label: str
    unit: str
    demand: tuple[str, ...]  # demand keys summed (first found for alternatives: see _busy)
    hard: bool = False  # an external limit money cannot raise (Stripe's rate limit)
    scalable: bool = True


PLAN_RESOURCES: tuple[PlanResource, ...] = (
    PlanResource("service_cores", "service cores", "cores", ("service_cpu",)),
    PlanResource("postgres_cores", "Postgres cores", "cores", ("postgres_cpu", "replica_cpu")),
    PlanResource("pgbouncer_cores", "PgBouncer cores", "cores", ("pgbouncer_cpu",)),
    PlanResource("redis_cores", "Redis cores", "cores", ("redis_cpu",)),
    PlanResource("osrm_cores", "OSRM cores", "cores", ("osrm_cpu",)),
    PlanResource(
        "db_connections", "DB connections in use (Little's law)", "connections", ("db_hold",)
    ),
    PlanResource("db_xacts", "DB transactions", "xact/s", ("db_xacts",)),
    PlanResource("stripe_rps", "Stripe requests", "req/s", ("stripe_calls",), hard=True),
    PlanResource("osrm_rps", "OSRM requests", "req/s", ("osrm_calls",)),
    PlanResource("redis_ops", "Redis operations", "ops/s", ("redis_ops",)),
    PlanResource("cache_hits", "cache hits", "hits/s", ("cache_hits",)),
)
MEMORY = PlanResource("redis_memory", "Redis memory", "bytes", ())
EGRESS = PlanResource("egress", "response bytes", "bytes/s", ())


@dataclass
class Projection:
    """One resource at one milestone (always projected)."""

    resource: PlanResource
    load: float  # busy rate at the milestone, in the resource's unit
    load_ci: tuple[float, float]
    required: float  # load / planning utilisation
    required_ci: tuple[float, float]
    capacity: seed_plan.SeedCapacity | None
    status: str  # "fits" | "exceeds" | "straddles" | "no capacity stated"
    binds_at: float | None = None  # users at which required reaches capacity
    binds_at_ci: tuple[float, float] | None = None


@dataclass
class MilestonePlan:
    milestone: str
    phase: int
    users: int  # gate load of the milestone (§8.4)
    target_users: int
    profile: str
    throughput: float
    throughput_ci: tuple[float, float]
    route_x: dict[str, float]
    projections: list[Projection]
    verdict: str  # "ready" | "needs ..." | "not ready" | "inconclusive"
    verdict_text: str
    binding: Projection | None
    factor: float  # users / highest measured users
    seed: seed_plan.SeedPhase
    #: short qualifiers printed with the verdict ("assumes more cores than measured", ...)
    tags: list[str] = field(default_factory=list)
    #: the sentences behind the tags (measured gate, backtest)
    caveats: list[str] = field(default_factory=list)

    @property
    def headline(self) -> str:
        """The verdict as printed: never a bare "ready" when a measurement says otherwise."""
        return self.verdict + (f" ({'; '.join(self.tags)})" if self.tags else "")


@dataclass
class BacktestRow:
    quantity: str
    unit: str
    predicted: float
    measured: float
    error: float | None  # (predicted - measured) / measured
    #: counted in the headline error: throughput, and resources at >= MATERIAL of what
    #: the run's stack had (a resource at 0.3 % of a core has no meaningful relative error)
    material: bool = True


@dataclass
class Backtest:
    run_id: str
    fit_steps: list[str]
    target_step: str
    users: float
    rows: list[BacktestRow]
    binding_predicted: str | None
    binding_measured: str | None
    note: str = ""

    @property
    def max_error(self) -> float | None:
        errs = [abs(r.error) for r in self.rows if r.error is not None and r.material]
        return max(errs) if errs else None


@dataclass
class CapacityPlan:
    run_ids: list[str]
    profiles: list[str]
    utilisation: float
    demands: dm.Demands
    milestones: list[MilestonePlan]
    backtests: list[Backtest]
    seed_formula: list[tuple[str, seed_plan.SeedFormula]]
    findings: list[str]
    assumptions: list[str]
    curves: dict[str, dict[str, np.ndarray]]  # resource key -> users, point, lo, hi
    stripe_limit: seed_plan.SeedCapacity
    profile_pool: float | None
    warnings: list[str] = field(default_factory=list)
    #: each run's own gate verdict on its own hardware (measured)
    measured_gates: list[MeasuredGate] = field(default_factory=list)
    #: why the projection is unreliable (backtest error > 20 %); None when it held
    unreliable: str | None = None

    #: target users of each milestone phase in the phase config (the chart's phase ranges)
    phase_users: dict[int, int] = field(default_factory=dict)
    #: load-generator worker cores per milestone (analysis.generator_sizing)
    generator: list[GeneratorSizing] = field(default_factory=list)


@dataclass
class MeasuredGate:
    """A run's gate verdict as measured on its own hardware, beside the projection."""

    run_id: str
    phase: int | None
    verdict: str  # runformat.verdicts.Verdict value
    gate_load: float | None
    load_unit: str
    step: str | None  # the measured gate step, None when the gate load was not applied
    cores: dict[str, float]  # plan resource key (unit "cores") -> cores the run had for it
    cores_from: str
    #: cores the processes shared (system under test's CPUs, else the host's)
    shared_cores: float = math.inf


class PlanError(ValueError):
    """The runs cannot give a plan (no steady step, no demands): one line for the CLI."""


def fmt_amount(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 2**30:,.2f} GiB"
    if unit == "bytes/s":
        return f"{value / 1e6:,.1f} MB/s"
    digits = 1 if abs(value) < 100 else 0
    return f"{value:,.{digits}f} {unit}"
