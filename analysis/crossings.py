"""Where a measured series crosses its limit as load grows: the constraint type, the
crossing itself (measured between steps, or projected from a straight-line trend with an
interval), utilisation and latency crossings, and the P95 projection the gate uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis import usl as usl_mod
from analysis.runs import Run
from analysis.seed_plan import HPA_TARGET_UTILISATION
from analysis.steps import StepStats

#: percent of the cores available to the service: the seed's HPA target (§6.3)
CPU_PLANNING_LINE = 100.0 * HPA_TARGET_UTILISATION


MEMORY_PLANNING_LINE = 0.80  # fraction of the memory limit


EXTRAPOLATION_LIMIT = usl_mod.EXTRAPOLATION_LIMIT


BEYOND = usl_mod.BEYOND  # basis of a crossing projected beyond 3x the highest measured load


#: Constraints whose crossing is a service-level objective ("SLO capacity").
SLO_CONSTRAINTS = ("latency SLO", "error budget")


HOST_CPU = "host CPU"


#: Rows shown for headroom that never bind (they are not limits of the system under test).
NON_BINDING = (HOST_CPU,)


_DRAWS = 2000


@dataclass
class Constraint:
    """One constraint's headroom.  ``load`` None means not reached (lower bound given)."""

    name: str
    limit: str
    basis: str  # "measured" | "projected" | "not reached" | BEYOND | "not available"
    load: float | None
    ci: tuple[float, float] | None
    lower_bound: float | None
    extrapolated: bool  # projected above the highest measured load (but within 3x)
    detail: str


def trend_draws(
    loads: np.ndarray, values: np.ndarray, seed: int = 0
) -> tuple[float, float, np.ndarray] | None:
    """Straight-line fit of ``values`` vs load, with (slope, intercept) draws.

    The draws carry the fit's uncertainty into a projection's interval (headroom
    crossings here, projected gate criteria in :mod:`analysis.gates`). None when
    the slope is not significantly positive: there is no trend to project.
    """
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
    trend = trend_draws(ld, vals)
    if trend is None:
        return _not_reached(
            name,
            limit,
            top,
            f"max {vals.max():.4g}{unit} of {threshold:.4g}{unit}; "
            "no significant upward trend to project",
        )
    slope, intercept, draws = trend
    load = (threshold - intercept) / slope
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (threshold - draws[:, 1]) / draws[:, 0]
    d = np.where(draws[:, 0] > 0, d, np.inf)
    lo, hi = np.percentile(d, [2.5, 97.5], method="inverted_cdf")
    return _projected(
        name,
        limit,
        float(load),
        (float(lo), float(hi)),
        top,
        f"linear trend {slope:.4g}{unit} per unit load; max measured {vals.max():.4g}{unit}",
    )


def _not_reached(name: str, limit: str, top: float, detail: str) -> Constraint:
    """Not crossed at any measured load, nor projectable: ``top`` is a lower bound."""
    return Constraint(name, limit, "not reached", None, None, top, False, detail)


def _projected(
    name: str, limit: str, load: float, ci: tuple[float, float], top: float, detail: str
) -> Constraint:
    """A model-based crossing, under the reporting rules of :func:`bounded`."""
    return bounded(Constraint(name, limit, "projected", load, ci, top, False, detail))


def bounded(c: Constraint) -> Constraint:
    """Apply the reporting rules to a projected crossing (``lower_bound`` = top measured).

    Beyond 3x the highest measured load the crossing is not a number (basis BEYOND); an
    interval is widened to contain its point and an upper end beyond the range becomes
    inf (printed "beyond the measured range").
    """
    if c.basis != "projected" or c.load is None or c.lower_bound is None:
        return c
    top = c.lower_bound
    if usl_mod.beyond_range(c.load, top):
        return Constraint(
            c.name,
            c.limit,
            BEYOND,
            None,
            None,
            top,
            False,
            f"the model puts it beyond {EXTRAPOLATION_LIMIT:g}x the highest measured load "
            f"({top:,.0f}): not projected as a number; {c.detail}",
        )
    lo, hi = c.ci if c.ci else (c.load, c.load)
    lo, hi = min(lo, c.load), max(hi, c.load)
    if usl_mod.beyond_range(hi, top):
        hi = math.inf
    c.ci = (max(lo, 0.0), hi)
    c.extrapolated = c.load > top
    return c


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
    trend = trend_draws(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
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
        return _not_reached(
            name,
            limit,
            top,
            f"{detail}; above the USL's "
            + (f"X_max {fit.x_max:,.1f} req/s" if fit.x_max is not None else "reach")
            + ": throughput saturates first",
        )
    load = float(grid[hit[0]])
    pd = fit.draws()
    xs = usl_mod.usl_model(grid[None, :], pd[:, :1], pd[:, 1:2], pd[:, 2:3])
    lo, hi = _first_crossing_interval(grid, xs >= x_need_draws[:, None])
    if not usl_mod.beyond_range(load, top):
        detail += f"; the USL delivers it at about {load:,.0f} users"
    return _projected(name, limit, load, (lo, hi), top, detail)


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
    # (the grid runs past 3x so that a crossing beyond it is known to be beyond, not absent)
    ratio, _ = proj
    draws = fit.draws()
    xs = usl_mod.usl_model(grid[None, :], draws[:, :1], draws[:, 1:2], draws[:, 2:3])
    p95_draws = ratio * (grid[None, :] / xs - z) * 1000.0
    point_curve = ratio * (grid / usl_mod.usl_model(grid, fit.sigma, fit.kappa, fit.lam) - z) * 1000
    hit = np.flatnonzero(point_curve >= slo_ms)
    top = max(loads)
    if not hit.size:
        return _not_reached(
            name,
            limit,
            top,
            f"USL projection stays under the SLO up to {EXTRAPOLATION_LIMIT:g}x measured load",
        )
    load = float(grid[hit[0]])
    lo, hi = _first_crossing_interval(grid, p95_draws >= slo_ms)
    detail = f"USL response time N/X(N) - Z scaled by P95/mean = {ratio:.2f}"
    return _projected(name, limit, load, (lo, hi), top, detail)


def project_p95(
    run: Run, steps: list[StepStats], fit: usl_mod.USLFit, load: float | None
) -> tuple[float, tuple[float, float]] | None:
    """(P95/mean ratio, _) when load is None; else (P95 ms at load, interval) from the USL.

    None when there is nothing honest to say: no fit, or a projected response time that
    is not positive (N/X(N) < Z: the model is outside its domain there).
    """
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
    if not point > 0:
        return None  # a negative response time: the model does not describe this load
    lo, hi = np.percentile(p95, [2.5, 97.5], method="inverted_cdf")
    return float(point), (max(min(float(lo), point), 0.0), max(float(hi), point))
