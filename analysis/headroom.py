"""Headroom per constraint: the load at which each constraint is reached.

Each constraint is a per-step metric and a limit.  If a measured step already crossed the
limit, the crossing is interpolated between the two steps around it (``measured``, the
interval is those two steps).  Otherwise a model projects it (``projected``): latency from
the USL (R(N) = N / X(N) - Z, P95 scaled by the P95/mean ratio of the highest step),
everything else from a straight-line trend vs load when that trend is significant
(slope > 0 at p < 0.05); intervals by drawing model parameters.  With no trend the
constraint is ``not reached`` and only the lower bound (largest measured load) is known.
CPU and Stripe calls follow the utilisation law (linear in throughput) and are mapped to
load through the USL.  The binding constraint is the one reached at the lowest load.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis import usl as usl_mod
from analysis.counters import counter_delta
from analysis.runs import Run
from analysis.steps import StepStats

CPU_PLANNING_LINE = 70.0  # percent of the cores available to the service
MEMORY_PLANNING_LINE = 0.80  # fraction of the memory limit
STRIPE_LIMIT_RPS = 100.0  # seed: Stripe allows 100 req/s
EXTRAPOLATION_LIMIT = usl_mod.EXTRAPOLATION_LIMIT
_DRAWS = 2000


@dataclass
class Constraint:
    """One constraint's headroom.  ``load`` None means not reached (lower bound given)."""

    name: str
    limit: str
    basis: str  # "measured" | "projected" | "not reached" | "not available"
    load: float | None
    ci: tuple[float, float] | None
    lower_bound: float | None
    extrapolated: bool
    detail: str


@dataclass
class Headroom:
    constraints: list[Constraint]
    binding: Constraint | None
    target: float | None
    sentence: str


def _trend_draws(loads: np.ndarray, values: np.ndarray, seed: int = 0):
    """Straight-line fit with parameter draws, or None when the slope is not significant."""
    if len(np.unique(loads)) < 3:
        return None
    lr = stats.linregress(loads, values)
    if not (lr.slope > 0 and lr.pvalue < 0.05):
        return None
    _, cov = np.polyfit(loads, values, 1, cov=True) if len(loads) > 3 else (None, None)
    rng = np.random.default_rng(seed)
    if cov is None or not np.all(np.isfinite(cov)):
        cov = np.diag([lr.stderr**2, lr.intercept_stderr**2])
    draws = rng.multivariate_normal(
        [lr.slope, lr.intercept], cov, size=_DRAWS, check_valid="ignore"
    )
    return lr.slope, lr.intercept, draws


def crossing(name: str, limit: str, loads, values, threshold: float, unit: str = "") -> Constraint:
    """Load at which ``values`` (per step, vs ``loads``) reach ``threshold``."""
    pts = sorted(
        (float(a), float(b))
        for a, b in zip(loads, values, strict=True)
        if b is not None and np.isfinite(b)
    )
    if not pts:
        return Constraint(
            name, limit, "not available", None, None, None, False, "metric not sampled"
        )
    ld = np.array([p[0] for p in pts])
    vals = np.array([p[1] for p in pts])
    top = float(ld.max())
    over = np.flatnonzero(vals >= threshold)
    if over.size:
        i = int(over[0])
        if i == 0:
            return Constraint(
                name,
                limit,
                "measured",
                float(ld[0]),
                (0.0, float(ld[0])),
                None,
                False,
                f"already at {vals[0]:.4g}{unit} at the lowest load",
            )
        a, b = ld[i - 1], ld[i]
        frac = (threshold - vals[i - 1]) / (vals[i] - vals[i - 1])
        return Constraint(
            name,
            limit,
            "measured",
            float(a + frac * (b - a)),
            (float(a), float(b)),
            None,
            False,
            f"crossed between {a:.0f} and {b:.0f} (interpolated)",
        )
    trend = _trend_draws(ld, vals)
    if trend is None:
        return Constraint(
            name,
            limit,
            "not reached",
            None,
            None,
            top,
            False,
            f"max {vals.max():.4g}{unit} of {threshold:.4g}{unit}; "
            "no significant upward trend to project",
        )
    slope, intercept, draws = trend
    load = (threshold - intercept) / slope
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (threshold - draws[:, 1]) / draws[:, 0]
    d = np.where(draws[:, 0] > 0, d, np.inf)
    lo, hi = np.percentile(d, [2.5, 97.5], method="inverted_cdf")
    return Constraint(
        name,
        limit,
        "projected",
        float(load),
        (float(lo), float(hi)),
        top,
        bool(load > EXTRAPOLATION_LIMIT * top),
        f"linear trend {slope:.4g}{unit} per unit load; max measured {vals.max():.4g}{unit}",
    )


def utilization_crossing(
    name: str,
    limit: str,
    steps: list[StepStats],
    values: list[float | None],
    threshold: float,
    fit: usl_mod.USLFit,
    unit: str = "",
) -> Constraint:
    """Throughput-driven metrics (CPU, Stripe calls): utilisation law, then the USL.

    CPU and external calls grow with throughput X, not with users (U = X * D), and X
    itself flattens with load; a straight line against users would overstate how soon
    they bind.  So: metric = a + b X (least squares), X needed = (limit - a) / b, and the
    load that delivers that X from the USL.  A limit that needs more than the USL's X_max
    is never reached: throughput saturates first.
    """
    loads = [st.load for st in steps]
    measured = crossing(name, limit, loads, values, threshold, unit)
    if measured.basis in ("measured", "not available") or not fit.ok:
        return measured
    pts = [(st.throughput_rps, v) for st, v in zip(steps, values, strict=True) if v is not None]
    trend = _trend_draws(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
    top = max(loads)
    if trend is None:
        return measured
    slope, intercept, draws = trend
    x_need = (threshold - intercept) / slope
    x_need_draws = (threshold - draws[:, 1]) / np.where(draws[:, 0] > 0, draws[:, 0], np.nan)
    grid = np.geomspace(1.0, top * 100, 1500)
    x_point = usl_mod.usl_model(grid, fit.sigma, fit.kappa, fit.lam)
    hit = np.flatnonzero(x_point >= x_need)
    detail = f"needs {x_need:,.1f} req/s ({slope:.4g}{unit} per req/s)"
    if not hit.size:
        return Constraint(
            name,
            limit,
            "not reached",
            None,
            None,
            top,
            False,
            f"{detail}; above the USL X_max {fit.x_max:,.1f} req/s: throughput saturates first",
        )
    load = float(grid[hit[0]])
    pd = fit.draws()
    xs = usl_mod.usl_model(grid[None, :], pd[:, :1], pd[:, 1:2], pd[:, 2:3])
    lo, hi = _first_crossing_interval(grid, xs >= x_need_draws[:, None])
    return Constraint(
        name,
        limit,
        "projected",
        load,
        (lo, hi),
        top,
        bool(load > EXTRAPOLATION_LIMIT * top),
        f"{detail}; the USL delivers it at {load:,.0f} users",
    )


def _first_crossing_interval(grid: np.ndarray, reached: np.ndarray) -> tuple[float, float]:
    """95% interval of the first load at which each parameter draw reaches the limit.

    ``reached`` is draws x grid; a draw that never reaches it counts as infinite load.
    """
    first = np.where(reached.any(axis=1), grid[np.argmax(reached, axis=1)], np.inf)
    lo, hi = np.percentile(first, [2.5, 97.5], method="inverted_cdf")
    return float(lo), float(hi)


def latency_constraint(
    run: Run, steps: list[StepStats], fit: usl_mod.USLFit, slo_ms: float
) -> Constraint:
    """P95 SLO: measured crossing, else USL-projected response time scaled to P95."""
    loads = [st.load for st in steps]
    p95 = [st.latency.p(0.95).value_ms for st in steps]
    name, limit = "latency SLO", f"P95 < {slo_ms:g} ms"
    measured = crossing(name, limit, loads, p95, slo_ms, " ms")
    if measured.basis == "not available":
        measured.detail = "insufficient data for a P95 at every step"
    if measured.basis == "measured" or run.model != "closed" or not fit.ok:
        return measured
    proj = project_p95(run, steps, fit, None)
    if proj is None:
        return measured
    z = sum(run.think_time_s) / 2.0
    grid = np.unique(np.geomspace(max(fit.max_measured, 1), fit.max_measured * 50, 400))
    ratio, _ = proj
    draws = fit.draws()
    xs = usl_mod.usl_model(grid[None, :], draws[:, :1], draws[:, 1:2], draws[:, 2:3])
    p95_draws = ratio * (grid[None, :] / xs - z) * 1000.0
    point_curve = ratio * (grid / usl_mod.usl_model(grid, fit.sigma, fit.kappa, fit.lam) - z) * 1000
    hit = np.flatnonzero(point_curve >= slo_ms)
    top = max(loads)
    if not hit.size:
        return Constraint(
            name,
            limit,
            "not reached",
            None,
            None,
            top,
            False,
            "USL projection stays under the SLO up to 50x measured load",
        )
    load = float(grid[hit[0]])
    lo, hi = _first_crossing_interval(grid, p95_draws >= slo_ms)
    return Constraint(
        name,
        limit,
        "projected",
        load,
        (lo, hi),
        top,
        bool(load > EXTRAPOLATION_LIMIT * top),
        f"USL response time N/X(N) - Z scaled by P95/mean = {ratio:.2f}",
    )


def project_p95(
    run: Run, steps: list[StepStats], fit: usl_mod.USLFit, load: float | None
) -> tuple[float, tuple[float, float]] | None:
    """(P95/mean ratio, _) when load is None; else (P95 ms at load, interval) from the USL."""
    ok = [st for st in steps if st.latency.p(0.95).ok and st.latency.mean_ms]
    if not ok or not fit.ok:
        return None
    top = max(ok, key=lambda st: st.load)
    ratio = top.latency.p(0.95).value_ms / top.latency.mean_ms
    if load is None:
        return ratio, (ratio, ratio)
    z = sum(run.think_time_s) / 2.0
    draws = fit.draws()
    x = usl_mod.usl_model(np.full(len(draws), load), *draws.T)
    p95 = ratio * (load / x - z) * 1000.0
    point = (
        ratio
        * (load / usl_mod.usl_model(np.array([load]), fit.sigma, fit.kappa, fit.lam)[0] - z)
        * 1000.0
    )
    lo, hi = np.percentile(p95, [2.5, 97.5], method="inverted_cdf")
    return float(point), (float(lo), float(hi))


def _resource_series(steps: list[StepStats], source: str, metric: str) -> list[float | None]:
    return [st.resources.get(source, {}).get(metric) for st in steps]


def is_generator(source: str) -> bool:
    """The load generator's own samples (never a constraint of the system under test)."""
    return source == "generator" or source.startswith("process:locust")


def _cpu_sources(steps: list[StepStats]) -> list[str]:
    found = {src for st in steps for src, m in st.resources.items() if "cpu_percent" in m}
    return sorted(s for s in found if not is_generator(s))


def _cpu_utilisation(run: Run, steps: list[StepStats], source: str) -> list[float | None]:
    """cpu_percent (psutil convention: 100 = one core) as a percent of the cores available.

    Cores: the source's ``cpu_limit_cores`` sample (a container quota) if any, else the
    host's ``cpus`` from the manifest, else 1.
    """
    limit = [v for v in _resource_series(steps, source, "cpu_limit_cores") if v]
    cores = max(limit) if limit else float((run.manifest.get("host") or {}).get("cpus") or 1)
    return [
        None if v is None else v / cores for v in _resource_series(steps, source, "cpu_percent")
    ]


def _db_connections(steps: list[StepStats]) -> list[float | None]:
    """Postgres backends in use: ``connections_total`` (the sampler's sum over states),
    else ``connections_active``."""
    total = _resource_series(steps, "postgres", "connections_total")
    if any(v is not None for v in total):
        return total
    return _resource_series(steps, "postgres", "connections_active")


def _memory_limit(run: Run, steps: list[StepStats], source: str) -> float | None:
    lim = [v for v in _resource_series(steps, source, "memory_limit_bytes") if v]
    if lim:
        return float(max(lim))
    host = run.manifest.get("host", {}) or {}
    mem = host.get("memory_bytes") or host.get("mem_total_bytes")
    return float(mem) if mem else None


def _stripe_rates(run: Run, steps: list[StepStats]) -> list[float | None]:
    out = []
    for st in steps:
        d = counter_delta(run.samples, "service", "stripe_calls", st.step.start_us, st.step.end_us)
        out.append(None if d is None else d / st.step.duration_s)
    return out


def compute_headroom(run: Run, steps: list[StepStats], fit: usl_mod.USLFit) -> Headroom:
    loads = [st.load for st in steps]
    cons: list[Constraint] = []
    for src in _cpu_sources(steps):
        cons.append(
            utilization_crossing(
                f"CPU {src}",
                f"{CPU_PLANNING_LINE:.0f}% planning line",
                steps,
                _cpu_utilisation(run, steps, src),
                CPU_PLANNING_LINE,
                fit,
                "%",
            )
        )
    mem_sources = sorted(
        {
            s
            for st in steps
            for s, m in st.resources.items()
            if "rss_bytes" in m and not is_generator(s)
        }
    )
    for src in mem_sources:
        limit = _memory_limit(run, steps, src)
        if limit:
            rss = [
                None if v is None else v / limit * 100
                for v in _resource_series(steps, src, "rss_bytes")
            ]
            cons.append(
                crossing(
                    f"memory {src}",
                    f"{MEMORY_PLANNING_LINE:.0%} of {limit / 2**30:.1f} GiB",
                    loads,
                    rss,
                    MEMORY_PLANNING_LINE * 100,
                    "%",
                )
            )
    maxc = [v for v in _resource_series(steps, "postgres", "max_connections") if v]
    if maxc:
        cons.append(
            crossing(
                "DB connections",
                f"max_connections = {max(maxc):.0f}",
                loads,
                _db_connections(steps),
                float(max(maxc)),
            )
        )
    pool = [v for v in _resource_series(steps, "pgbouncer", "pool_size") if v]
    if pool:
        cons.append(
            crossing(
                "PgBouncer pool",
                f"pool_size = {max(pool):.0f}",
                loads,
                _resource_series(steps, "pgbouncer", "sv_active"),
                float(max(pool)),
            )
        )
    if any(v is not None for v in _resource_series(steps, "pgbouncer", "cl_waiting")):
        cons.append(
            crossing(
                "PgBouncer client waits",
                "mean cl_waiting >= 1",
                loads,
                _resource_series(steps, "pgbouncer", "cl_waiting"),
                1.0,
            )
        )
    criteria = {**run.gate, **(run.gate.get("criteria", {}) or {})}
    slo = criteria.get("p95_ms")
    if slo is not None:
        cons.append(latency_constraint(run, steps, fit, float(slo)))
    budget = float(criteria.get("error_rate", 0.01))
    cons.append(
        crossing(
            "error budget",
            f"error rate < {budget:.2%}",
            loads,
            [st.error_rate if st.n else None for st in steps],
            budget,
        )
    )
    stripe = _stripe_rates(run, steps)
    if any(v is not None for v in stripe):
        cons.append(
            utilization_crossing(
                "Stripe rate limit",
                f"{STRIPE_LIMIT_RPS:.0f} req/s",
                steps,
                stripe,
                STRIPE_LIMIT_RPS,
                fit,
                " req/s",
            )
        )
    reached = [c for c in cons if c.load is not None]
    binding = min(reached, key=lambda c: c.load) if reached else None
    target = run.gate.get("target_users", run.config.get("target_users"))
    target = float(target) if target is not None else None
    return Headroom(cons, binding, target, leadership_sentence(run, binding, target, loads))


def leadership_sentence(
    run: Run, binding: Constraint | None, target: float | None, loads: list[float]
) -> str:
    phase = run.phase if run.phase is not None else "?"
    if target is None:
        return f"Phase {phase}: no user target configured (config.gate.target_users)."
    if binding is None:
        top = max(loads) if loads else 0
        if not top:
            return f"Phase {phase}: no steady-state load step; capacity unknown."
        return (
            f"Phase {phase}'s target ({target:,.0f} users) is at most {target / top:.0%} of "
            f"SLO-compliant capacity: no constraint was reached up to {top:,.0f} users "
            "(measured), so capacity is only known to be above that."
        )
    lo, hi = binding.ci if binding.ci else (binding.load, binding.load)
    pct = target / binding.load
    pct_hi = target / lo if lo and lo > 0 else float("inf")
    pct_lo = target / hi if hi and np.isfinite(hi) and hi > 0 else 0.0
    flag = ", extrapolated beyond 2x measured load" if binding.extrapolated else ""
    return (
        f"Phase {phase}'s target is {pct:.0%} of SLO-compliant capacity "
        f"({pct_lo:.0%}–{pct_hi:.0%}; {binding.basis}{flag}), bound by {binding.name} "
        f"at {binding.load:,.0f} users."
    )
