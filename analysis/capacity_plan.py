"""Capacity plan for milestones M1–M4 from measured service demands (issue 13).

``plan(runs, phase=None)`` turns what each request cost every component in a run
(:mod:`analysis.demands`) into what each milestone needs, with operational laws:

* throughput per route at N users: N x (each persona's share of users in the milestone's
  phase config x its measured per-user request rate x its route mix), plus the operator's
  fixed cron; think times of the milestone's config rescale the per-user rate;
* utilisation law: busy(N) = background + Σ_r X_r(N) D_r for CPU, transactions, Stripe,
  OSRM and Redis calls; Little's law: connections in use = Σ_r X_r(N) x hold time_r;
* required capacity = busy / planning utilisation (70 %: the seed's own HPA target, §6.3);
* the first resource to bind: the smallest N at which required capacity reaches what the
  seed plans for the phase (:mod:`analysis.seed_plan`).

Intervals come from drawing the demand regressions' parameters (HAC covariance) and the
per-user rates (their across-step intervals) together (``DRAWS`` draws, fixed seed).

Everything here is *projected* and says so: milestones lie 10–100x beyond a load this
machine can apply, where nothing was measured.  The numbers are requirements under stated
assumptions (``CapacityPlan.assumptions``), not predictions of this machine; the backtest
(fit on the lower steps, predict the highest) says how far the method held on the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis import demands as dm
from analysis import gates, saturation, seed_plan, validity
from analysis.generator_sizing import GeneratorSizing, size_generators
from analysis.headroom import available_cores
from analysis.runs import Run
from analysis.steps import build_steps, compute_step_stats

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


# --------------------------------------------------------------------------- per-user load


@dataclass
class UserLoad:
    """Route throughput as a function of users: X_r(N) = N * per_user_r + fixed_r, with
    draws of both for intervals."""

    per_user: np.ndarray
    fixed: np.ndarray
    per_user_draws: np.ndarray  # (DRAWS, routes)
    fixed_draws: np.ndarray

    def at(self, users: float) -> np.ndarray:
        return users * self.per_user + self.fixed

    def draws_at(self, users: float) -> np.ndarray:
        return users * self.per_user_draws + self.fixed_draws


def _sd(ci: tuple[float, float]) -> float:
    return max(ci[1] - ci[0], 0.0) / (2 * 1.96)


def user_load(
    d: dm.Demands, mix: dict[str, float] | None, think_s: float | None, rng: np.random.Generator
) -> UserLoad:
    """Per-user route rates for a persona mix and think time (``None``: as measured).

    Per-user rates are rescaled by (R + Z_run) / (R + Z_new): a user cycles through
    response time R and think time Z; R is the measured cycle minus the run's think time.
    """
    routes = d.routes
    adj = 1.0
    if think_s is not None and math.isfinite(d.cycle_s):
        resp = max(d.cycle_s - d.think_mean_s, 0.0)
        adj = (resp + d.think_mean_s) / max(resp + think_s, 1e-9)
    by_mix = [p for p in d.personas if not p.fixed and p.persona != dm.ALL_USERS]
    total_w = sum((mix or {}).get(p.persona, 0.0) for p in by_mix)
    per_user = np.zeros(len(routes))
    fixed = np.zeros(len(routes))
    pu_draws = np.zeros((DRAWS, len(routes)))
    fx_draws = np.zeros((DRAWS, len(routes)))
    for p in d.personas:
        share = np.array([p.route_share.get(r, 0.0) for r in routes])
        draws = np.clip(rng.normal(p.rate, _sd(p.ci), DRAWS), 0, None)
        if p.fixed:
            fixed += p.rate * share
            fx_draws += draws[:, None] * share[None, :]
            continue
        w = p.weight
        if mix and total_w > 0 and p.persona != dm.ALL_USERS:
            w = mix.get(p.persona, 0.0) / total_w
        per_user += w * p.rate * adj * share
        pu_draws += w * adj * draws[:, None] * share[None, :]
    return UserLoad(per_user, fixed, pu_draws, fx_draws)


# --------------------------------------------------------------------------- resources


@dataclass
class ResourceModel:
    """busy(N) for one plan resource, point and draws."""

    resource: PlanResource
    fits: list[dm.ResourceDemand]
    param_draws: list[np.ndarray]

    def busy(self, load: UserLoad, users: float) -> float:
        x = load.at(users)
        return sum(f.predict(x) for f in self.fits)

    def busy_draws(self, load: UserLoad, users: float) -> np.ndarray:
        x = load.draws_at(users)  # (DRAWS, routes)
        return sum((p[:, 0] + np.einsum("ij,ij->i", p[:, 1:], x)) for p in self.param_draws)

    def per_user_slope(self, load: UserLoad) -> tuple[float, float]:
        """busy(N) = a + b N: (a, b)."""
        a = sum(f.background + f.demand @ load.fixed for f in self.fits)
        b = sum(f.demand @ load.per_user for f in self.fits)
        return float(a), float(b)


def resource_models(d: dm.Demands, rng: np.random.Generator) -> dict[str, ResourceModel]:
    out = {}
    for res in PLAN_RESOURCES:
        fits = [f for key in res.demand if (f := d.resource(key)) is not None]
        if fits:
            out[res.key] = ResourceModel(res, fits, [f.draws(DRAWS, rng) for f in fits])
    return out


def _interval(point: float, draws: np.ndarray) -> tuple[float, float]:
    lo, hi = np.nanpercentile(draws, [2.5, 97.5])
    return (min(float(lo), point), max(float(hi), point))


def _status(ci: tuple[float, float], capacity: float | None) -> str:
    if capacity is None:
        return "no capacity stated"
    if ci[1] <= capacity:
        return "fits"
    if ci[0] > capacity:
        return "exceeds"
    return "straddles"


def _binds_at(
    model: ResourceModel, load: UserLoad, capacity: float, util: float
) -> tuple[float | None, tuple[float, float] | None]:
    """Users at which busy(N) reaches capacity x utilisation (busy is linear in N)."""
    a, b = model.per_user_slope(load)
    if b <= 0:
        return None, None
    n = (capacity * util - a) / b
    # draws: busy at two loads gives each draw's line
    b0 = model.busy_draws(load, 0.0)
    b1 = model.busy_draws(load, 1000.0)
    slope = (b1 - b0) / 1000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        nd = np.where(slope > 0, (capacity * util - b0) / slope, np.inf)
    lo, hi = np.percentile(nd, [2.5, 97.5], method="inverted_cdf")  # inf-safe
    return max(n, 0.0), (max(min(float(lo), n), 0.0), max(float(hi), n))


# --------------------------------------------------------------------------- milestones


def _milestone_config(config: Path | None):
    from runconfig.phase_config import ConfigError, load_phases

    try:
        return load_phases(config)
    except ConfigError as exc:
        raise PlanError(str(exc)) from None


def stripe_capacity(runs: list[Run]) -> seed_plan.SeedCapacity:
    """The Stripe limit the runs' stack imposed (manifest), else the seed's 100 req/s."""
    for run in runs:
        value = (run.manifest.get("stripe") or {}).get("rate_limit_per_s")
        if value:
            return seed_plan.SeedCapacity(float(value), "manifest stripe.rate_limit_per_s")
    return seed_plan.SEED_PHASES[1].capacities["stripe_rps"]


def profile_pool(runs: list[Run]) -> float | None:
    """The pool the run's profile had: PgBouncer's pool_size, else the service's pool max."""
    for source, metric in (("pgbouncer", "pool_size"), ("service", "marketplace_db_pool_max_size")):
        for run in runs:
            s = run.samples
            if s.empty:
                continue
            v = s.loc[(s["source"] == source) & (s["metric"] == metric), "value"]
            if not v.empty and v.max() > 0:
                return float(v.max())
    return None


def _project(
    res: PlanResource,
    model: ResourceModel | None,
    load: UserLoad,
    users: float,
    capacity: seed_plan.SeedCapacity | None,
    util: float,
) -> Projection | None:
    if model is None:
        return None
    point = model.busy(load, users)
    ci = _interval(point, model.busy_draws(load, users))
    ci = (max(ci[0], min(point, 0.0)), ci[1])  # a busy rate is never below 0
    req = (point / util, (ci[0] / util, ci[1] / util))
    proj = Projection(
        res, point, ci, req[0], req[1], capacity, _status(req[1], capacity and capacity.amount)
    )
    if capacity is not None:
        proj.binds_at, proj.binds_at_ci = _binds_at(model, load, capacity.amount, util)
    return proj


def demand_at(
    d: dm.Demands,
    key: str,
    load: float,
    open_model: bool = False,
    util: float = PLANNING_UTILISATION,
) -> Projection | None:
    """One measured demand (e.g. ``service_cpu``) at a run's gate load, the way a milestone
    row is computed: busy = background + Σ_r X_r D_r (utilisation law), required = busy /
    ``util``, intervals by drawing demands and per-user rates together.

    ``load`` is users with the run's own persona mix and think time (closed model), or
    arrivals/s split by the run's route shares (``open_model``).  None when the run holds
    no demand for ``key``.  Used by :mod:`analysis.binding` for "cores needed at the gate".
    """
    f = d.resource(key)
    if f is None:
        return None
    rng = np.random.default_rng(0)
    res = PlanResource(key, f.spec.label, f.spec.rate_unit, (key,))
    model = ResourceModel(res, [f], [f.draws(DRAWS, rng)])
    if open_model:
        share = np.array([d.route_share.get(r, 0.0) for r in d.routes])
        zero = np.zeros_like(share)
        users_load = UserLoad(share, zero, np.tile(share, (DRAWS, 1)), np.tile(zero, (DRAWS, 1)))
    else:
        users_load = user_load(d, None, None, rng)
    return _project(res, model, users_load, load, None, util)


def _memory_projection(
    d: dm.Demands, users: float, capacity: seed_plan.SeedCapacity | None, util: float
) -> Projection | None:
    m = d.memory
    if m is None:
        return None
    point = m.predict(users)
    a = np.array([1.0, users])
    se = math.sqrt(max(float(a @ m.cov @ a), 0.0))
    ci = (point - 1.96 * se, point + 1.96 * se)
    req_ci = (ci[0] / util, ci[1] / util)
    proj = Projection(
        MEMORY,
        point,
        ci,
        point / util,
        req_ci,
        capacity,
        _status(req_ci, capacity and capacity.amount),
    )
    if capacity is not None and m.slope > 0:
        proj.binds_at = max((capacity.amount * util - m.intercept) / m.slope, 0.0)
    return proj


def _egress(d: dm.Demands, load: UserLoad, users: float) -> Projection:
    b = np.array([d.bytes_per_request.get(r, 0.0) for r in d.routes])
    point = float(load.at(users) @ b)
    draws = load.draws_at(users) @ b
    ci = _interval(point, draws)
    return Projection(EGRESS, point, ci, point, ci, None, "no capacity stated")


def milestone_plan(
    d: dm.Demands,
    models: dict[str, ResourceModel],
    phase: int,
    phases_file,
    util: float,
    stripe: seed_plan.SeedCapacity,
    rng: np.random.Generator,
) -> tuple[MilestonePlan, UserLoad]:
    spec = phases_file.phases[phase]
    defaults = phases_file.defaults
    mix = spec.persona_mix or defaults.persona_mix
    think = spec.think_time_s or defaults.think_time_s
    load = user_load(d, dict(mix), sum(think) / 2.0, rng)
    seed = seed_plan.SEED_PHASES[phase]
    users = float(spec.gate_users)
    projections = []
    for res in PLAN_RESOURCES:
        cap = seed.capacities.get(res.key)
        if res.key == "stripe_rps":
            cap = stripe
        p = _project(res, models.get(res.key), load, users, cap, util)
        if p is not None:
            projections.append(p)
    mem = _memory_projection(d, users, seed.capacities.get("redis_memory"), util)
    if mem is not None:
        projections.append(mem)
    projections.append(_egress(d, load, users))
    x = load.at(users)
    xd = load.draws_at(users).sum(axis=1)
    top = d.top_users or 1.0
    verdict, text = _verdict(projections, util)
    bound = [p for p in projections if p.binds_at is not None]
    return (
        MilestonePlan(
            milestone=seed.milestone,
            phase=phase,
            users=int(users),
            target_users=spec.target_users,
            profile=spec.profile,
            throughput=float(x.sum()),
            throughput_ci=_interval(float(x.sum()), xd),
            route_x={r: float(v) for r, v in zip(d.routes, x, strict=True)},
            projections=projections,
            verdict=verdict,
            verdict_text=text,
            binding=min(bound, key=lambda p: p.binds_at) if bound else None,
            factor=users / top,
            seed=seed,
        ),
        load,
    )


def fmt_amount(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 2**30:,.2f} GiB"
    if unit == "bytes/s":
        return f"{value / 1e6:,.1f} MB/s"
    digits = 1 if abs(value) < 100 else 0
    return f"{value:,.{digits}f} {unit}"


def _verdict(projections: list[Projection], util: float) -> tuple[str, str]:
    """ready / needs X / not ready / inconclusive, from the capacities the seed states."""
    over = [p for p in projections if p.status == "exceeds"]
    hard = [p for p in over if p.resource.hard]
    unsure = [p for p in projections if p.status == "straddles"]

    def need(p: Projection) -> str:
        cap = p.capacity
        return (
            f"{p.resource.label}: needs {fmt_amount(p.required, p.resource.unit)} "
            f"[{fmt_amount(p.required_ci[0], p.resource.unit)}–"
            f"{fmt_amount(p.required_ci[1], p.resource.unit)}] at "
            f"{util:.0%} vs {fmt_amount(cap.amount, p.resource.unit)} ({cap.section})"
        )

    if hard:
        rest = [p for p in over if not p.resource.hard]
        return "not ready", "; ".join(need(p) for p in [*hard, *rest])
    if over:
        return "needs " + ", ".join(p.resource.label for p in over), "; ".join(
            need(p) for p in over
        )
    if unsure:
        return "inconclusive", "interval straddles the seed's capacity: " + "; ".join(
            need(p) for p in unsure
        )
    stated = [p for p in projections if p.capacity is not None]
    provision = [p for p in projections if p.capacity is None and p.resource.unit == "cores"]
    text = f"every stated capacity holds ({len(stated)} checked)"
    if provision:
        text += "; the seed states no size for: " + ", ".join(
            f"{p.resource.label} ({fmt_amount(p.required, 'cores')} needed)" for p in provision
        )
    return "ready", text


# --------------------------------------------------------------------------- backtest


def predict_throughput(users: np.ndarray, throughput: np.ndarray, at: float) -> float:
    """Throughput at ``at`` users from lower steps: the cycle time N / X (response + think)
    fitted as a polynomial in N (degree 2 with four or more steps, the USL's exact form —
    C(N) = (1 - σ + (σ - κ) N + κ N²) / λ —, else a line, else a constant)."""
    cycle = users / throughput
    deg = 2 if users.size >= 4 else (1 if users.size >= 2 else 0)
    coef = np.polyfit(users, cycle, deg)
    c = float(np.polyval(coef, at))
    if not c > 0:
        c = float(cycle[-1])
    return at / c


def _stack_capacity(run: Run, key: str, pool: float | None, stripe: float | None) -> float | None:
    """What the run's own stack had of a resource (for the backtest's binding constraint)."""
    res = next(r for r in PLAN_RESOURCES if r.key == key)
    if res.unit == "cores":
        return available_cores(run, [], None)[0]
    if key == "db_connections":
        return pool
    if key == "stripe_rps":
        return stripe
    return None


def backtest(run: Run, util: float = PLANNING_UTILISATION) -> Backtest | None:
    """Fit demands on all steps but the highest, predict the highest (issue 13 item 3)."""
    steps = build_steps(run)
    if len(steps) < 2:
        return None
    try:
        full = dm.estimate([run], [steps])
    except dm.DemandError:
        return None
    if len(full.levels) < 2:
        return None
    top = full.levels[-1]
    lower = [lv.step for lv in full.levels[:-1] if lv.run_id == run.run_id]
    try:
        fit = dm.estimate([run], [lower])
    except dm.DemandError:
        return None
    users = np.array([lv.users for lv in fit.levels])
    xs = np.array([lv.throughput for lv in fit.levels])
    x_hat = predict_throughput(users, xs, top.users)
    share = np.array([fit.route_share.get(r, 0.0) for r in fit.routes])
    route_hat = x_hat * share
    rows = [BacktestRow("throughput", "req/s", x_hat, top.throughput, _err(x_hat, top.throughput))]
    pool = profile_pool([run])
    stripe = (run.manifest.get("stripe") or {}).get("rate_limit_per_s")
    ratio_pred: dict[str, float] = {}
    ratio_meas: dict[str, float] = {}
    for res in PLAN_RESOURCES:
        fits = [f for key in res.demand if (f := fit.resource(key)) is not None]
        measured = [top.busy.get(key) for key in res.demand if key in top.busy]
        if not fits or not measured:
            continue
        pred = sum(f.predict(route_hat) for f in fits)
        meas = float(sum(measured))
        cap = _stack_capacity(run, res.key, pool, float(stripe) if stripe else None)
        material = bool(cap) and meas / cap >= MATERIAL
        rows.append(BacktestRow(res.label, res.unit, pred, meas, _err(pred, meas), material))
        if cap:
            ratio_pred[res.label], ratio_meas[res.label] = pred / cap, meas / cap
    return Backtest(
        run_id=run.run_id,
        fit_steps=[s.name for s in lower],
        target_step=top.step.name,
        users=top.users,
        rows=rows,
        binding_predicted=max(ratio_pred, key=ratio_pred.get) if ratio_pred else None,
        binding_measured=max(ratio_meas, key=ratio_meas.get) if ratio_meas else None,
        note=(
            "binding = the resource nearest its capacity on the run's own stack (cores of the "
            "host, the profile's pool, the Stripe mock's limit)"
        ),
    )


def _err(pred: float, meas: float) -> float | None:
    """Relative error; None when the measured value is too small to divide by."""
    return (pred - meas) / meas if abs(meas) > 1e-9 else None


# --------------------------------------------------------------------------- seed formula


def seed_formula(run: Run) -> dm.DemandError | seed_plan.SeedFormula:
    """§6.5 ``calculateCapacity`` on the run's highest steady step."""
    stats = [s for s in compute_step_stats(run, build_steps(run)) if s.n]
    if not stats:
        return dm.DemandError("no steady step")
    top = max(stats, key=lambda s: s.load)
    cpu, source = None, "not sampled"
    for src in ("process:marketplace", "service"):
        v = top.resources.get(src, {}).get("cpu_percent")
        if v is not None:
            cores, where = available_cores(run, [top], src)
            cpu, source = v / cores, f"{src} cpu_percent / {cores:g} cores ({where})"
            break
    p95 = top.latency.p(0.95).value_ms if top.latency.p(0.95).ok else None
    c, lat, err, result = seed_plan.calculate_capacity(top.load, p95, top.error_rate, cpu)
    notes = [
        "cpuCapacity = (100 - cpu) / cpu x maxUsers is the headroom beyond maxUsers, not a "
        "capacity (linear scaling would give 100 / cpu x maxUsers)",
        "all three terms assume CPU, P95 and errors grow in proportion to users",
    ]
    if top.error_rate == 0:
        notes.append("no errors at the step: errorCapacity = 0.01 / 0 = Infinity (JavaScript)")
    return seed_plan.SeedFormula(
        top.load, p95, top.error_rate, cpu, source, c, lat, err, result, notes
    )


# --------------------------------------------------------------------------- the plan


def _assumptions(d: dm.Demands, profiles: list[str], milestones: list[MilestonePlan]) -> list[str]:
    out = [
        "Linear demand per request: each request costs every resource what it cost in the "
        "measured range (utilisation law); caches, indexes and query plans behave at "
        "milestone scale as on the run's fixtures.",
        "Users behave as in the run: each persona's per-user request rate as measured, with "
        "the milestone phase's persona mix and think times; throughput is linear in users.",
        f"No new contention: each resource is sized to run at {PLANNING_UTILISATION:.0%} "
        "(the seed's HPA target, §6.3), where response times stay near the measured ones; "
        "contention beyond what the run's steps showed (USL/knee) is not modelled.",
        "Background use (the regression's intercept) is counted once, as on one instance.",
        "The operator's cron (batch generation, payouts) stays one user at every milestone.",
        "Capacities are the seed's (§1.1–§7.2, cited per row); where the seed states none "
        "the requirement is listed to provision, not judged.",
    ]
    top = d.top_users
    far = [m for m in milestones if m.factor > TESTED_RANGE]
    if far:
        out.append(
            "Where it breaks: "
            + ", ".join(f"{m.milestone} is {m.factor:,.0f}x" for m in far)
            + f" the highest measured load ({top:,.0f} users); beyond {TESTED_RANGE:g}x the "
            "linearity was never tested. These are requirements under the assumptions above, "
            "not predictions of this machine."
        )
    if d.per_user_trend is not None and d.per_user_trend < -0.10:
        out.append(
            f"The per-user request rate fell {-d.per_user_trend:.0%} from the lowest to the "
            "highest step: the system under test slowed its users down, so the measured rate "
            "understates what users offer to a system that keeps up; milestone throughput is "
            "a lower bound."
        )
    for m in milestones:
        if m.profile not in profiles:
            out.append(
                f"{m.milestone} runs profile {m.profile}; demands were measured on "
                f"{', '.join(sorted(set(profiles)))}: caching, replicas and queues change "
                f"demands, so plan {m.milestone} from a {m.profile} run to trust it."
            )
    return out


def _findings(
    milestones: list[MilestonePlan],
    formulas: list[tuple[str, seed_plan.SeedFormula]],
    d: dm.Demands,
) -> list[str]:
    """Where the seed and the measurement disagree, and which seed assumption breaks."""
    out = []
    for m in milestones:
        for p in m.projections:
            if p.status == "exceeds" and p.capacity is not None:
                why = m.seed.assumptions.get(p.resource.key, "its capacity figure")
                out.append(
                    f"{m.milestone}: {p.resource.label} needs "
                    f"{fmt_amount(p.required, p.resource.unit)} (projected) against "
                    f"{fmt_amount(p.capacity.amount, p.resource.unit)} planned "
                    f"({p.capacity.section}): the measurement contradicts the seed's assumption "
                    f"{why}."
                )
    bind = next((m.binding for m in milestones if m.binding is not None), None)
    for run_id, f in formulas:
        if f.result is None:
            continue
        text = (
            f"Run {run_id}: the seed's calculateCapacity gives {f.result:,.0f} users "
            f"(CPU {_num(f.cpu_capacity)}, latency {_num(f.latency_capacity)}, errors "
            f"{_num(f.error_capacity)}) from one step at {f.max_users:,.0f} users, assuming "
            "everything scales linearly with CPU, P95 and errors as the only limits"
        )
        if bind is not None and bind.binds_at is not None:
            text += (
                f"; the measured demands say {bind.resource.label} binds first, at "
                f"{bind.binds_at:,.0f} users on the seed's phase capacities — a resource the "
                "formula does not look at"
            )
        out.append(text + ".")
    return out


def _num(v: float | None) -> str:
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "Infinity"
    return f"{v:,.0f}"


def _curves(
    d: dm.Demands,
    models: dict[str, ResourceModel],
    load: UserLoad,
    util: float,
) -> dict[str, dict[str, np.ndarray]]:
    """Required capacity vs users for the chart (the M4 phase's mix)."""
    grid = np.geomspace(max(d.top_users / 10, 1.0), 200_000, 60)
    out = {}
    for key, model in models.items():
        pts, lo, hi = [], [], []
        for n in grid:
            p = model.busy(load, n) / util
            q = _interval(p * util, model.busy_draws(load, n))
            pts.append(p)
            lo.append(q[0] / util)
            hi.append(q[1] / util)
        meas_u = np.array(
            [lv.users for lv in d.levels if any(k in lv.busy for k in model.resource.demand)]
        )
        meas_v = np.array(
            [
                sum(lv.busy.get(k, 0.0) for k in model.resource.demand) / util
                for lv in d.levels
                if any(k in lv.busy for k in model.resource.demand)
            ]
        )
        out[key] = {
            "users": grid,
            "point": np.array(pts),
            "lo": np.array(lo),
            "hi": np.array(hi),
            "measured_users": meas_u,
            "measured": meas_v,
        }
    return out


def measured_gate(run: Run) -> MeasuredGate:
    """The run's gate evaluated as ``loadgate report`` evaluates it, and the cores each
    planned process had (:func:`analysis.headroom.available_cores`)."""
    stats = compute_step_stats(run, build_steps(run))
    fit = saturation.fit_usl(stats, run.model)
    gate = gates.evaluate(run, stats, fit, validity.run_checks(run, stats))
    shared, where = available_cores(run, stats, None)
    cores = {}
    for res in PLAN_RESOURCES:
        if res.unit != "cores":
            continue
        sources = [
            src
            for key in res.demand
            for src, metric in dm.RESOURCE_BY_KEY[key].candidates
            if any(metric in st.resources.get(src, {}) for st in stats)
        ]
        cores[res.key], _ = available_cores(run, stats, sources[0] if sources else None)
    return MeasuredGate(
        run.run_id,
        run.phase,
        str(gate.verdict),
        gate.gate_load,
        gate.load_unit,
        gate.step,
        cores,
        where,
        shared,
    )


def qualify(m: MilestonePlan, measured: list[MeasuredGate], unreliable: str | None) -> None:
    """Tag a milestone's verdict with what the measurements say about it (issue 20 item 5).

    A run of the milestone's phase measured its gate on its own hardware: where the
    projection needs more cores than that run had, the verdict says it assumes more cores;
    where the measured gate FAILED and no more cores are needed, the projection is
    contradicted by the measurement.  A backtest error above 20 % marks it unreliable.
    """
    for g in measured:
        if g.phase != m.phase or g.verdict in ("PASS", "NO GATE"):
            continue  # a measured pass on the run's hardware supports the projection
        rows = [p for p in m.projections if p.resource.unit == "cores"]
        total = sum(p.required for p in rows)
        more = total > g.shared_cores or any(
            p.required > g.cores.get(p.resource.key, math.inf) for p in rows
        )
        where = (
            f"measured at {g.gate_load:,.0f} {g.load_unit} in step {g.step}"
            if g.step
            else "the gate load was not applied"
        )
        said = f"Run {g.run_id}'s own gate: {g.verdict} ({where}, on its own hardware)"
        if more:
            m.tags.append("assumes more cores than measured")
            m.caveats.append(
                f"{said}; '{m.verdict}' assumes {total:,.1f} cores for the system under "
                "test's processes ("
                + ", ".join(
                    f"{p.resource.label} {p.required:,.1f} "
                    f"[{p.required_ci[0]:,.1f}–{p.required_ci[1]:,.1f}]"
                    for p in rows
                )
                + f") where the run had {g.shared_cores:g} ({g.cores_from}): more cores "
                "than the measurement had."
            )
        elif g.verdict == "FAIL":
            m.tags.append("contradicted by the measured gate")
            m.caveats.append(
                f"{said}, although the projection needs no more cores than the run had: "
                "what failed is not in these demands (see the run report's 'Binds' line)."
            )
        else:
            m.caveats.append(f"{said}: the projection is not confirmed by a measurement.")
    if unreliable:  # the sentence itself is the plan's (CapacityPlan.unreliable), said once
        m.tags.append(f"unreliable: backtest error above {RELIABLE_BACKTEST_ERROR:.0%}")
    m.tags = list(dict.fromkeys(m.tags))  # several runs of one phase: each tag once


def reliability(backtests: list[Backtest]) -> str | None:
    """Why the projection is unreliable (the method's own backtest missed by more than
    20 %), else None."""
    bad = [
        b for b in backtests if b.max_error is not None and b.max_error > RELIABLE_BACKTEST_ERROR
    ]
    if not bad:
        return None
    worst = max(bad, key=lambda b: b.max_error)
    return (
        f"Unreliable projection: fitted on the lower steps, the method predicted run "
        f"{worst.run_id}'s highest step ({worst.target_step}, {worst.users:,.0f} users) with "
        f"a {worst.max_error:.0%} error (above {RELIABLE_BACKTEST_ERROR:.0%}): its "
        "milestone numbers are not to be relied on."
    )


def plan(
    runs: list[Run],
    phase: int | None = None,
    config: Path | None = None,
    utilisation: float = PLANNING_UTILISATION,
) -> CapacityPlan:
    """The capacity plan for milestones M1–M4 (or only ``phase``'s) from ``runs``.

    Raises PlanError (one line) when the runs hold no steady-state step with records.
    """
    if not 0 < utilisation <= 1:
        raise PlanError(f"planning utilisation {utilisation}: must be in (0, 1], e.g. 0.7")
    phases_file = _milestone_config(config)
    wanted = MILESTONE_PHASES if phase is None else (phase,)
    for p in wanted:
        if p not in MILESTONE_PHASES or p not in phases_file.phases:
            raise PlanError(f"--phase {p}: choose a milestone phase, one of 1, 2, 3, 4")
    try:
        d = dm.estimate(runs)
    except dm.DemandError as exc:
        raise PlanError(f"{exc}: pass a run with at least one steady-state step") from None
    if not d.levels:
        raise PlanError("no request records in any steady-state step: nothing to plan from")
    rng = np.random.default_rng(0)
    models = resource_models(d, rng)
    stripe = stripe_capacity(runs)
    milestones, loads = [], []
    for p in wanted:
        m, load = milestone_plan(d, models, p, phases_file, utilisation, stripe, rng)
        milestones.append(m)
        loads.append(load)
    backtests = [b for r in runs if (b := backtest(r, utilisation)) is not None]
    measured = [measured_gate(r) for r in runs]
    unreliable = reliability(backtests)
    for m in milestones:
        qualify(m, measured, unreliable)
    formulas = []
    for r in runs:
        f = seed_formula(r)
        if isinstance(f, seed_plan.SeedFormula):
            formulas.append((r.run_id, f))
    profiles = [str(r.meta.profile) for r in runs]
    warnings = [w for r in runs for w in r.warnings] + d.warnings
    if len(set(profiles)) > 1:
        warnings.append(
            f"runs of different profiles pooled ({', '.join(sorted(set(profiles)))}): demands "
            "mix architectures"
        )
    return CapacityPlan(
        run_ids=d.run_ids,
        profiles=profiles,
        utilisation=utilisation,
        demands=d,
        milestones=milestones,
        backtests=backtests,
        seed_formula=formulas,
        findings=_findings(milestones, formulas, d),
        assumptions=_assumptions(d, profiles, milestones),
        curves=_curves(d, models, loads[-1], utilisation),
        stripe_limit=stripe,
        profile_pool=profile_pool(runs),
        warnings=warnings,
        measured_gates=measured,
        unreliable=unreliable,
        generator=size_generators(runs, milestones),
    )
