"""Service demands per request class and per resource, measured from a run (issue 13).

Why a regression: the utilisation law says a resource's busy rate is the sum over request
classes of throughput times demand, ``U = b + Σ_r X_r D_r`` (``b`` the background the
resource spends whatever the load: the sampler's own queries, a cron, idle polling).  The
samples give ``U`` once a second (CPU of every process, counters of transactions, Stripe
calls, connection-hold seconds, Redis commands) and the raw request records give ``X_r``
for the same second, so every steady-state second is one equation.  Across steps the load
level moves ``X`` a lot, within a step the random mix moves each ``X_r`` a little: that is
what separates the classes.

Library: ``statsmodels`` OLS with a Newey–West (HAC) covariance.  Per-second residuals are
autocorrelated (a slow second is followed by a slow second), and ordinary standard errors
would be too narrow (docs/statistics.md); HAC keeps the intervals honest.  OLS rather than
``scipy.optimize.nnls`` because nnls gives no covariance: a demand whose interval reaches
below 0 is reported as "not distinguishable from 0", never clipped silently.

Request classes are route templates ("GET /products/[id]"); routes below
``MIN_ROUTE_SHARE`` of the steady-state requests are pooled as "other routes" (a class
with a handful of requests a second cannot be told apart from noise in a 1 Hz CPU sample).

The per-user request rate of each persona comes from the same records: requests of the
persona per second divided by its users (the run's users times the persona's share of the
config's ``persona_mix``).  The operator's cron (persona ``operations``) is one user
whatever the load, so its requests are a fixed rate, not a per-user one.

Only what the samples hold is estimated; ``Demands.missing`` lists what was asked for and
is not there (never invented).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import statsmodels.api as sm
from scipy import stats

from analysis.runs import Run, parquet_files, read_tables
from analysis.steps import Step, build_steps

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
    _cpu(
        "service_cpu", "service", ("process:marketplace", "cpu_percent"), ("service", "cpu_percent")
    ),
    _cpu(
        "postgres_cpu", "Postgres", ("process:postgres", "cpu_percent"), ("postgres", "cpu_percent")
    ),
    _cpu("replica_cpu", "Postgres replica", ("process:replica", "cpu_percent")),
    _cpu("pgbouncer_cpu", "PgBouncer", ("process:pgbouncer", "cpu_percent")),
    _cpu("redis_cpu", "Redis", ("process:redis", "cpu_percent")),
    _cpu("stripe_cpu", "Stripe mock", ("process:stripe", "cpu_percent")),
    _cpu("osrm_cpu", "OSRM", ("process:osrm", "cpu_percent")),
    ResourceSpec(
        "db_xacts",
        "DB transactions",
        "counter",
        (("pgbouncer", "total_xact_count"), ("postgres", "xact_total")),
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
        (("pgbouncer", "total_xact_time"),),
        1e-6,  # µs
        "connections",
        "connection-ms",
        1000.0,
    ),
    ResourceSpec(
        "stripe_calls",
        "Stripe calls",
        "counter",
        (("service", "stripe_calls"),),
        1.0,
        "req/s",
        "calls",
    ),
    ResourceSpec(
        "osrm_calls", "OSRM calls", "counter", (("service", "osrm_calls"),), 1.0, "req/s", "calls"
    ),
    ResourceSpec(
        "redis_ops",
        "Redis operations",
        "counter",
        (("redis", "total_commands_processed"),),
        1.0,
        "ops/s",
        "ops",
    ),
    ResourceSpec(
        "cache_hits",
        "cache hits",
        "counter",
        (("service", "cache_hits"), ("redis", "keyspace_hits")),
        1.0,
        "hits/s",
        "hits",
    ),
)
RESOURCE_BY_KEY = {r.key: r for r in RESOURCES}
#: Asked for by issue 13 and never sampled by loadgate's samplers (loadgate/samplers.py).
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


# --------------------------------------------------------------------------- records


@dataclass
class _Records:
    ts_us: np.ndarray
    route: pd.Categorical
    persona: pd.Categorical
    users: np.ndarray
    bytes: np.ndarray


def read_records(path: Path) -> _Records:
    """ts, route ("METHOD /template"), persona, users and bytes of every request.

    Read here rather than taken from ``Run.events``: the analysis keeps only the columns
    it needs, and persona and bytes are not among them.
    """
    cols = ["ts_us", "persona", "method", "name", "users", "bytes"]
    # a truncated file: load_run already warned about it
    tables = read_tables(parquet_files(path / "events"), cols, [], quiet=True)
    if not tables:
        raise DemandError(f"{path}: no readable events")
    t = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    route = (t["method"].astype(str) + " " + t["name"].astype(str)).str.strip()
    return _Records(
        ts_us=t["ts_us"].to_numpy(np.int64),
        route=pd.Categorical(route),
        persona=pd.Categorical(t["persona"].fillna("").astype(str)),
        users=t["users"].fillna(0).to_numpy(np.float64),
        bytes=t["bytes"].fillna(0).to_numpy(np.float64),
    )


def _in_steps(ts: np.ndarray, steps: list[Step]) -> np.ndarray:
    """Step index of each timestamp, -1 outside every steady-state window."""
    out = np.full(ts.shape, -1, dtype=np.int32)
    for i, st in enumerate(steps):
        out[(ts >= st.start_us) & (ts < st.end_us)] = i
    return out


def route_groups(records: list[_Records], step_lists: list[list[Step]]) -> list[str]:
    """Routes with at least MIN_ROUTE_SHARE of the steady requests, then OTHER if any."""
    counts: pd.Series = pd.Series(dtype=float)
    for rec, steps in zip(records, step_lists, strict=True):
        inside = _in_steps(rec.ts_us, steps) >= 0
        c = pd.Series(np.asarray(rec.route[inside], dtype=object)).value_counts()
        counts = counts.add(c[c > 0], fill_value=0)
    total = float(counts.sum())
    if total <= 0:
        raise DemandError("no request records inside a steady-state step")
    share = counts / total
    major = sorted(share[share >= MIN_ROUTE_SHARE].index.astype(str))
    return [*major, OTHER] if len(major) < len(share) else major


def _group_codes(route: pd.Categorical, groups: list[str]) -> np.ndarray:
    other = groups.index(OTHER) if OTHER in groups else -1
    lut = np.array([groups.index(c) if c in groups else other for c in route.categories])
    return lut[route.codes] if lut.size else np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- samples


def _find(samples: pd.DataFrame, spec: ResourceSpec) -> tuple[str, str] | None:
    """The first candidate (source, metric) sampled (``x`` also as ``x_total``)."""
    if samples.empty:
        return None
    pairs = samples[["source", "metric"]].drop_duplicates()
    present = set(zip(pairs["source"].astype(str), pairs["metric"].astype(str), strict=True))
    for source, metric in spec.candidates:
        for name in (metric, f"{metric}_total"):
            if (source, name) in present:
                return source, name
    return None


def busy_series(samples: pd.DataFrame, source: str, metric: str, kind: str, scale: float):
    """Per sample tick: (t0, t1, busy rate over (t0, t1]).

    A gauge sampled at t1 describes the interval since the previous tick (psutil's
    ``cpu_percent(None)`` is the average since its last call); a counter's increase
    between two ticks (per labelled series, positive increments only: a restart resets
    it) divided by their distance is its rate.
    """
    sel = samples[(samples["source"] == source) & (samples["metric"] == metric)]
    wide = sel.pivot_table(
        index="ts_us", columns="labels", values="value", aggfunc="last", observed=True
    ).sort_index()
    ts = wide.index.to_numpy(np.int64)
    if ts.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    dt = np.diff(ts) / 1e6
    if kind == "gauge":
        values = wide.to_numpy(float)[1:]
        y = np.where(np.isfinite(values).any(axis=1), np.nansum(values, axis=1), np.nan)
    else:
        # a tick a series missed (its sampler failed) moves the increase to the next tick
        inc = np.diff(wide.ffill().to_numpy(float), axis=0)
        y = np.where(np.isfinite(inc) & (inc > 0), inc, 0.0).sum(axis=1) / dt
    return ts[:-1], ts[1:], y * scale


def _windowed(t0: np.ndarray, t1: np.ndarray, steps: list[Step]) -> np.ndarray:
    """Tick intervals that lie wholly inside one steady-state window."""
    a, b = _in_steps(t0, steps), _in_steps(t1 - 1, steps)
    return (a >= 0) & (a == b)


def route_rates(
    ts_us: np.ndarray, groups: np.ndarray, n_groups: int, t0: np.ndarray, t1: np.ndarray
) -> np.ndarray:
    """Requests/s of each route group in each interval [t0, t1) (request start times)."""
    edges = np.empty(2 * t0.size, dtype=np.int64)
    edges[0::2], edges[1::2] = t0, t1
    pos = np.searchsorted(edges, ts_us, side="right")
    inside = (pos % 2 == 1) & (groups >= 0)
    k = (pos[inside] - 1) // 2
    counts = np.bincount(k * n_groups + groups[inside], minlength=t0.size * n_groups).reshape(
        t0.size, n_groups
    )
    return counts / ((t1 - t0) / 1e6)[:, None]


# --------------------------------------------------------------------------- fitting


def newey_west_lags(n: int) -> int:
    """Newey–West's rule of thumb 4 (n / 100)^(2/9) (at least 1)."""
    return max(1, int(4 * (n / 100.0) ** (2.0 / 9.0)))


def _ols(y: np.ndarray, design: np.ndarray, lags: int):
    with warnings.catch_warnings():  # R² of a constant series divides by 0: reported as nan
        warnings.simplefilter("ignore", RuntimeWarning)
        return sm.OLS(y, design).fit(cov_type="HAC", cov_kwds={"maxlags": lags})


def fit_resource(
    spec: ResourceSpec, source: str, metric: str, routes: list[str], x: np.ndarray, y: np.ndarray
) -> ResourceDemand | None:
    """OLS with HAC covariance of busy rate on route throughputs (module doc).

    With fewer than PER_ROUTE_INTERVALS intervals per coefficient (a short run, or a
    sampler that fell behind on a saturated host) the routes are not separable: the pooled
    demand is given to every route, with its covariance, and a note says so.
    """
    n, k = y.size, len(routes)
    if n < MIN_SECONDS:
        return None
    lags = newey_west_lags(n)
    one = _ols(y, sm.add_constant(x.sum(axis=1), has_constant="add"), lags)
    one_ci = np.asarray(one.conf_int(alpha=1 - CONFIDENCE))
    notes = []
    if n >= PER_ROUTE_INTERVALS * (k + 1):
        res = _ols(y, sm.add_constant(x, has_constant="add"), lags)
        params = np.asarray(res.params, float)
        ci = np.asarray(res.conf_int(alpha=1 - CONFIDENCE))
        cov = np.asarray(res.cov_params(), float)
        r2 = float(res.rsquared)
        weak = [r for r, lo in zip(routes, ci[1:, 0], strict=True) if lo <= 0]
        if weak:
            notes.append(
                f"{spec.label}: not distinguishable from 0 at 95 %: "
                + ", ".join(weak)
                + " (no measurable demand, or too little of that route to separate it in "
                "1 Hz samples)."
            )
    else:
        jac = np.zeros((k + 1, 2))
        jac[0, 0] = 1.0
        jac[1:, 1] = 1.0
        params = jac @ np.asarray(one.params, float)
        cov = jac @ np.asarray(one.cov_params(), float) @ jac.T
        ci = jac @ one_ci
        r2 = float(one.rsquared)
        notes.append(
            f"{spec.label}: only {n} sample intervals for {k} routes: every route is given the "
            "pooled demand (routes not separable)."
        )
    return ResourceDemand(
        spec=spec,
        source=source,
        metric=metric,
        routes=routes,
        demand=params[1:],
        demand_ci=ci[1:],
        background=float(params[0]),
        background_ci=(float(ci[0, 0]), float(ci[0, 1])),
        cov=cov,
        per_request=float(one.params[1]),
        per_request_ci=(float(one_ci[1, 0]), float(one_ci[1, 1])),
        r2=r2,
        seconds=n,
        maxlags=lags,
        mean_busy=float(y.mean()),
        notes=notes,
    )


def _persona_weights(run: Run) -> dict[str, float]:
    mix = run.config.get("persona_mix") or {}
    total = sum(float(v) for v in mix.values())
    return {str(k): float(v) / total for k, v in mix.items()} if total > 0 else {}


def persona_rates(
    runs: list[Run], records: list[_Records], step_lists: list[list[Step]], groups: list[str]
) -> tuple[list[PersonaRate], float | None]:
    """Per-user request rate per persona, with a t interval across steps (a step is the
    unit that repeats; requests within it are not independent).  Also the relative change
    of the all-persona per-user rate from the lowest to the highest step: a fall means the
    system under test slowed its users down."""
    weights = _persona_weights(runs[0])
    per_step: dict[str, list[tuple[float, float]]] = {}  # persona -> (requests, user-seconds)
    shares: dict[str, np.ndarray] = {}
    overall: list[tuple[float, float]] = []  # (users, requests / user-second)
    for rec, steps in zip(records, step_lists, strict=True):
        step_of = _in_steps(rec.ts_us, steps)
        gcodes = _group_codes(rec.route, groups)
        personas = [str(p) for p in rec.persona.categories]
        for p_code, persona in enumerate(personas):
            name = persona if (persona in weights or persona == OPERATIONS) else ALL_USERS
            if not weights:
                name = OPERATIONS if persona == OPERATIONS else ALL_USERS
            mine = rec.persona.codes == p_code
            counts = np.bincount(gcodes[mine & (step_of >= 0)], minlength=len(groups))
            shares[name] = shares.get(name, np.zeros(len(groups))) + counts
        for i, st in enumerate(steps):
            inside = step_of == i
            n_users = float(np.median(rec.users[inside])) if inside.any() else float(st.users)
            if not inside.any():
                continue
            overall.append((n_users, inside.sum() / (st.duration_s * max(n_users, 1.0))))
            step_rows: dict[str, list[float]] = {}
            for p_code, persona in enumerate(personas):
                n = float(np.count_nonzero(inside & (rec.persona.codes == p_code)))
                if persona == OPERATIONS:
                    key, user_s = OPERATIONS, st.duration_s
                elif weights and persona in weights:
                    key, user_s = persona, st.duration_s * n_users * weights[persona]
                else:
                    key, user_s = ALL_USERS, st.duration_s * n_users
                row = step_rows.setdefault(key, [0.0, user_s])
                row[0] += n  # several persona codes may share a key: users counted once
            for key, row in step_rows.items():
                per_step.setdefault(key, []).append((row[0], row[1]))
    out = []
    for key, rows in sorted(per_step.items()):
        rows_arr = np.array(rows, float)
        rate = rows_arr[:, 0].sum() / rows_arr[:, 1].sum() if rows_arr[:, 1].sum() > 0 else 0.0
        ci = _across_steps(rows_arr, rate)
        share = shares.get(key, np.zeros(len(groups)))
        out.append(
            PersonaRate(
                persona=key,
                weight=0.0 if key == OPERATIONS else (weights.get(key, 1.0) if weights else 1.0),
                rate=rate,
                ci=ci,
                route_share={
                    g: float(s) for g, s in zip(groups, share / max(share.sum(), 1), strict=True)
                },
                fixed=key == OPERATIONS,
            )
        )
    trend = None
    if len(overall) >= 2:
        overall.sort()
        lo, hi = overall[0][1], overall[-1][1]
        trend = (hi - lo) / lo if lo > 0 else None
    return out, trend


def _across_steps(rows: np.ndarray, pooled: float) -> tuple[float, float]:
    """t interval of the per-step rates, widened to contain the pooled rate."""
    rates = rows[:, 0] / np.where(rows[:, 1] > 0, rows[:, 1], np.nan)
    rates = rates[np.isfinite(rates)]
    if rates.size < 2:
        return (pooled, pooled)
    half = (
        stats.t.ppf(0.5 + CONFIDENCE / 2, rates.size - 1)
        * rates.std(ddof=1)
        / math.sqrt(rates.size)
    )
    mean = float(rates.mean())
    return (max(0.0, min(mean - half, pooled)), max(mean + half, pooled))


def _memory_model(levels_raw: list[tuple[float, float]]) -> LevelModel | None:
    pts = sorted(levels_raw)
    if len({p[0] for p in pts}) < 3:
        return None
    u = np.array([p[0] for p in pts])
    v = np.array([p[1] for p in pts])
    res = sm.OLS(v, sm.add_constant(u)).fit()
    ci = np.asarray(res.conf_int(alpha=1 - CONFIDENCE))
    return LevelModel(
        "Redis memory",
        "bytes",
        float(res.params[0]),
        float(res.params[1]),
        (float(ci[1, 0]), float(ci[1, 1])),
        np.asarray(res.cov_params(), float),
        pts,
    )


def estimate(runs: list[Run], step_lists: list[list[Step]] | None = None) -> Demands:
    """Demands of ``runs`` pooled, over their steady-state steps (or ``step_lists``).

    Raises DemandError when no step holds records.
    """
    if step_lists is None:
        step_lists = [build_steps(r) for r in runs]
    if not any(step_lists):
        raise DemandError("no steady-state (hold) step in the run's stages")
    records = [read_records(r.path) for r in runs]
    groups = route_groups(records, step_lists)
    g = len(groups)
    codes = [_group_codes(rec.route, groups) for rec in records]
    xs: dict[str, list[np.ndarray]] = {}
    ys: dict[str, list[np.ndarray]] = {}
    found: dict[str, tuple[str, str]] = {}
    missing: list[str] = []
    levels: list[StepLevel] = []
    mem_points: list[tuple[float, float]] = []
    spans: dict[str, float] = {}
    run_warnings: list[str] = []
    steady_s = sum(st.duration_s for steps in step_lists for st in steps)
    for run, rec, gc, steps in zip(runs, records, codes, step_lists, strict=True):
        step_of = _in_steps(rec.ts_us, steps)
        for i, st in enumerate(steps):
            inside = step_of == i
            if not inside.any():
                continue
            n_users = float(np.median(rec.users[inside]))
            route_x = np.bincount(gc[inside], minlength=g) / st.duration_s
            levels.append(StepLevel(run.run_id, st, n_users, float(route_x.sum()), route_x, {}))
            mem = _step_mean(run.samples, "redis", "used_memory", st)
            if mem is not None:
                mem_points.append((n_users, mem))
        for spec in RESOURCES:
            where = _find(run.samples, spec)
            if where is None:
                continue
            found.setdefault(spec.key, where)
            t0, t1, y = busy_series(run.samples, *where, spec.kind, spec.scale)
            keep = _windowed(t0, t1, steps) & np.isfinite(y)
            t0, t1, y = t0[keep], t1[keep], y[keep]
            xs.setdefault(spec.key, []).append(route_rates(rec.ts_us, gc, g, t0, t1))
            spans[spec.key] = spans.get(spec.key, 0.0) + float((t1 - t0).sum()) / 1e6
            ys.setdefault(spec.key, []).append(y)
            step_idx = _in_steps(t0, steps)
            for lv in levels:
                if lv.run_id != run.run_id:
                    continue
                m = step_idx == steps.index(lv.step)
                if m.any():
                    lv.busy[spec.key] = float(y[m].mean())
    resources = []
    for spec in RESOURCES:
        if spec.key not in found:
            missing.append(f"{spec.label}: not sampled in this run ({_wanted(spec)})")
            continue
        x, y = np.vstack(xs[spec.key]), np.concatenate(ys[spec.key])
        if y.size and not np.any(y):
            missing.append(f"{spec.label}: zero throughout the steady-state steps (unused)")
            continue
        fit = fit_resource(spec, *found[spec.key], groups, x, y)
        if fit is None:
            missing.append(f"{spec.label}: only {y.size} sample intervals in steady state")
            continue
        resources.append(fit)
        covered = float(spans[spec.key]) / max(steady_s, 1e-9)
        if covered < 0.5 and spec.key == "service_cpu":
            run_warnings.append(
                f"the samples cover only {covered:.0%} of the steady-state time (intervals "
                "between samples wholly inside a step): the sampler fell behind, e.g. on a "
                "saturated host; demands rest on few intervals"
            )
    if not mem_points:
        missing.append("Redis memory: redis used_memory not sampled in this run")
    missing += [f"{m}: not sampled by loadgate" for m in NOT_SAMPLED]
    personas, trend = persona_rates(runs, records, step_lists, groups)
    all_inside = [
        (_in_steps(rec.ts_us, st) >= 0) for rec, st in zip(records, step_lists, strict=True)
    ]
    total_req = sum(float(m.sum()) for m in all_inside)
    share = np.zeros(g)
    byte_sum, byte_n = np.zeros(g), np.zeros(g)
    for rec, gc, m in zip(records, codes, all_inside, strict=True):
        share += np.bincount(gc[m], minlength=g)
        byte_sum += np.bincount(gc[m], weights=rec.bytes[m], minlength=g)
        byte_n += np.bincount(gc[m], minlength=g)
    user_s = sum(lv.users * lv.step.duration_s for lv in levels)
    think = [sum(r.think_time_s) / 2.0 for r in runs]
    return Demands(
        run_ids=[r.run_id for r in runs],
        routes=groups,
        route_share={r: float(s / max(total_req, 1)) for r, s in zip(groups, share, strict=True)},
        resources=resources,
        personas=personas,
        bytes_per_request={
            r: float(b / n) if n else 0.0 for r, b, n in zip(groups, byte_sum, byte_n, strict=True)
        },
        memory=_memory_model(mem_points),
        think_mean_s=float(np.mean(think)),
        cycle_s=user_s / total_req if total_req else math.inf,
        per_user_trend=trend,
        levels=sorted(levels, key=lambda lv: lv.users),
        missing=missing,
        warnings=run_warnings,
    )


def _wanted(spec: ResourceSpec) -> str:
    return " or ".join(f"{s} {m}" for s, m in spec.candidates)


def _step_mean(samples: pd.DataFrame, source: str, metric: str, st: Step) -> float | None:
    if samples.empty:
        return None
    m = (
        (samples["source"] == source)
        & (samples["metric"] == metric)
        & (samples["ts_us"] >= st.start_us)
        & (samples["ts_us"] < st.end_us)
    )
    return float(samples.loc[m, "value"].mean()) if m.any() else None
