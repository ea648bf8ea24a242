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

Nothing the reports print may mislead (issue 9): a crossing the model puts beyond 3x the
highest measured load is not a number but "beyond the measured range" (basis ``BEYOND``);
every interval contains its own point estimate; a projected rate stays in [0, 1] and a
projected latency above 0 (:func:`sanitize_criterion` applies the same rules to the gate's
projected criteria).  The Stripe limit is the one the run's stack had (manifest
``stripe.rate_limit_per_s``), never a constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis import usl as usl_mod
from analysis.counters import counter_delta
from analysis.criterion import INSUFFICIENT
from analysis.runs import Run
from analysis.seed_plan import HPA_TARGET_UTILISATION
from analysis.steps import StepStats
from runformat.schemas import HOST_CPU_METRIC, HOST_SOURCE, is_generator_source

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


@dataclass
class Headroom:
    constraints: list[Constraint]
    binding: Constraint | None
    target: float | None
    sentence: str


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


def _resource_series(steps: list[StepStats], source: str, metric: str) -> list[float | None]:
    return [st.resources.get(source, {}).get(metric) for st in steps]


def is_generator(source: str) -> bool:
    """The load generator's own samples (never a constraint of the system under test)."""
    return is_generator_source(source)  # one definition: runformat.schemas


#: ``loadgate run`` itself (samplers, probes, live view): measured, never the system under test.
HARNESS_SOURCE = "process:harness"


def is_system_under_test(source: str) -> bool:
    """A source whose limits are the system's: not the generator, not the harness."""
    return not is_generator(source) and source != HARNESS_SOURCE


def _cpu_sources(steps: list[StepStats]) -> list[str]:
    found = {src for st in steps for src, m in st.resources.items() if "cpu_percent" in m}
    return sorted(s for s in found if is_system_under_test(s))


def sut_cores(manifest: dict) -> float | None:
    """CPUs the system under test was given, when the run isolated it from the generator.

    The plug-in point for CPU isolation: a manifest ``sut_cpus`` (top level or under
    ``host``; a count, or the list of CPU ids it was pinned to).  None when the run did not
    record one (then the whole host's count is what the service could use).
    """
    iso = manifest.get("isolation") or {}
    if iso.get("mechanism") == "cpuset" and iso.get("stack_cpus"):
        # pinned: the stack had exactly these CPUs (with cgroup weights it may also use
        # what the generator leaves idle, so the host's count stays the ceiling)
        return float(len(iso["stack_cpus"]))
    for where in (manifest, manifest.get("host") or {}):
        value = where.get("sut_cpus") if isinstance(where, dict) else None
        if isinstance(value, list | tuple):
            value = len(value)
        try:
            if value is not None and float(value) > 0:
                return float(value)
        except (TypeError, ValueError):
            continue
    return None


def available_cores(run: Run, steps: list[StepStats], source: str | None) -> tuple[float, str]:
    """Cores a process could use in this run, and where that number comes from.

    The source's ``cpu_limit_cores`` sample (a container quota) if any, else the system
    under test's CPUs (:func:`sut_cores`), else the host's ``cpus`` from the manifest,
    else 1.  One place for every "this run had N cores" (headroom, plan, backtest).
    """
    if source is not None:
        limit = [v for v in _resource_series(steps, source, "cpu_limit_cores") if v]
        if limit:
            return float(max(limit)), f"{source} cpu_limit_cores"
    sut = sut_cores(run.manifest)
    if sut is not None:
        return sut, "the system under test's CPUs (manifest sut_cpus)"
    host = (run.manifest.get("host") or {}).get("cpus")
    if host:
        return float(host), "host cores (manifest host.cpus)"
    return 1.0, "not recorded (1 assumed)"


def _cpu_utilisation(run: Run, steps: list[StepStats], source: str) -> list[float | None]:
    """cpu_percent (psutil convention: 100 = one core) as a percent of the cores available
    (:func:`available_cores`)."""
    cores, _ = available_cores(run, steps, source)
    return [
        None if v is None else v / cores for v in _resource_series(steps, source, "cpu_percent")
    ]


def host_cpu_constraint(steps: list[StepStats], fit: usl_mod.USLFit) -> Constraint | None:
    """Whole-host CPU (100 = every core) against the planning line: a headroom row.

    A row, never the binding constraint: the host counts the load generator too, so its
    crossing is not a limit of the system under test (``NON_BINDING``).  None when the
    host was not sampled.
    """
    values = _resource_series(steps, HOST_SOURCE, HOST_CPU_METRIC)
    if not any(v is not None for v in values):
        return None
    c = utilization_crossing(
        HOST_CPU,
        f"{CPU_PLANNING_LINE:.0f}% planning line",
        steps,
        values,
        CPU_PLANNING_LINE,
        fit,
        "%",
    )
    c.detail += "; whole host, load generator included: shown, never the binding constraint"
    return c


def _db_connections(steps: list[StepStats]) -> list[float | None]:
    """Postgres backends in use: ``connections_total`` (the sampler's sum over states),
    else ``connections_active``."""
    total = _resource_series(steps, "postgres", "connections_total")
    if any(v is not None for v in total):
        return total
    return _resource_series(steps, "postgres", "connections_active")


def memory_limit(run: Run, steps: list[StepStats], source: str) -> float | None:
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
            if "rss_bytes" in m and is_system_under_test(s)
        }
    )
    for src in mem_sources:
        limit = memory_limit(run, steps, src)
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
    pools = (  # (constraint, source, its size's metric, connections in use per step)
        ("DB connections", "postgres", "max_connections", lambda: _db_connections(steps)),
        (
            "PgBouncer pool",
            "pgbouncer",
            "pool_size",
            lambda: _resource_series(steps, "pgbouncer", "sv_active"),
        ),
    )
    for name, source, size_metric, in_use in pools:
        size = max((v for v in _resource_series(steps, source, size_metric) if v), default=None)
        if size:
            limit = f"{size_metric} = {size:.0f}"
            cons.append(crossing(name, limit, loads, in_use(), float(size)))
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
    budget = criteria.get("error_rate")
    if budget is not None:  # no error_rate in the gate (phase 0's empty gate): no budget
        cons.append(
            crossing(
                "error budget",
                f"error rate < {float(budget):.2%}",
                loads,
                [st.error_rate if st.n else None for st in steps],
                float(budget),
            )
        )
    stripe = _stripe_rates(run, steps)
    if any(v is not None for v in stripe):
        cons.append(_stripe_constraint(run, steps, stripe, fit))
    host = host_cpu_constraint(steps, fit)
    if host is not None:
        cons.append(host)
    reached = [c for c in cons if c.load is not None and c.name not in NON_BINDING]
    binding = min(reached, key=lambda c: c.load) if reached else None
    target = run.gate.get("target_users", run.config.get("target_users"))
    target = float(target) if target is not None else None
    measured = [st.load for st in steps if st.n]  # "measured up to" only where records are
    return Headroom(cons, binding, target, leadership_sentence(run, binding, target, measured))


def stripe_limit(run: Run) -> float | None:
    """The rate limit (req/s) the run's Stripe mock imposed, from the manifest; None when
    the manifest does not record it, 0 when the limit was off."""
    value = (run.manifest.get("stripe") or {}).get("rate_limit_per_s")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _stripe_constraint(
    run: Run, steps: list[StepStats], rates: list[float | None], fit: usl_mod.USLFit
) -> Constraint:
    limit = stripe_limit(run)
    if not limit or limit <= 0:
        why = (
            "the run's Stripe mock had no rate limit"
            if limit is not None
            else "the stack's Stripe rate limit is not recorded in the manifest "
            "(stripe.rate_limit_per_s)"
        )
        return Constraint(
            "Stripe rate limit", "unknown", "not available", None, None, None, False, why
        )
    return utilization_crossing(
        "Stripe rate limit", f"{limit:g} req/s", steps, rates, limit, fit, " req/s"
    )


def _pct_range(target: float, c: Constraint) -> str:
    """target / load as a percentage with its interval; the point is inside by construction
    (``bounded`` makes every interval contain its load)."""
    lo, hi = c.ci if c.ci else (c.load, c.load)
    pct = target / c.load
    pct_lo = target / hi if hi and math.isfinite(hi) and hi > 0 else 0.0
    pct_hi = target / lo if lo and lo > 0 else math.inf
    pct_lo, pct_hi = min(pct_lo, pct), max(pct_hi, pct)
    if not math.isfinite(pct_hi):
        return f"{pct:.0%} (95% interval: at least {pct_lo:.0%})"
    return f"{pct:.0%} ({pct_lo:.0%}–{pct_hi:.0%})"


def leadership_sentence(
    run: Run, binding: Constraint | None, target: float | None, loads: list[float]
) -> str:
    """One sentence naming the first constraint reached and what it means for the target.

    "SLO capacity" only when that constraint is the latency SLO or the error budget; any
    other constraint (PgBouncer waits, CPU, memory) is named as what it is.
    """
    phase = run.phase if run.phase is not None else "?"
    top = max(loads) if loads else 0
    if binding is None:
        if not top:
            return f"Phase {phase}: no steady-state load step; capacity unknown."
        aim = f" Phase {phase}'s target: {target:,.0f} users." if target is not None else ""
        return (
            f"No constraint reached up to {top:,.0f} users (measured) nor projected within "
            f"{EXTRAPOLATION_LIMIT:g}x that: capacity is only known to be above "
            f"{top:,.0f} users.{aim}"
        )
    where = f"{binding.load:,.0f} users"
    if binding.ci:
        lo, hi = binding.ci
        up = f"{hi:,.0f}" if math.isfinite(hi) else "beyond the measured range"
        where += f" [{lo:,.0f}–{up}]"
    first = f"First constraint reached: {binding.name} at {where} ({binding.basis})."
    if target is None:
        return f"{first} No user target configured for phase {phase}."
    kind = "SLO capacity" if binding.name in SLO_CONSTRAINTS else f"the {binding.name} limit"
    return (
        f"{first} Phase {phase}'s target ({target:,.0f} users) is "
        f"{_pct_range(target, binding)} of {kind}."
    )


def sanitize_criterion(r, top):
    """Reporting rules for a projected gate criterion (``analysis.criterion.CriterionResult``).

    ``top`` is the highest measured step (StepStats or None).  A projection to a gate load
    beyond 3x the highest measured load is withdrawn ("insufficient data", reason given);
    a projected rate is kept in [0, 1], a projected latency must be positive; the interval
    always contains the point.  Called by gates.py on every criterion it evaluates.
    """
    if getattr(r, "basis", None) != "projected" or r.value is None:
        return r
    top_load = float(top.load) if top is not None else 0.0
    if usl_mod.beyond_range(r.load, top_load):
        r.status, r.basis, r.value, r.ci = INSUFFICIENT, "none", None, None
        r.detail = (
            f"gate load {r.load:,.0f} is {BEYOND} (more than {EXTRAPOLATION_LIMIT:g}x the "
            f"highest measured load, {top_load:,.0f}): not projected; run closer to it"
        )
        return r
    lo, hi = r.ci if r.ci else (r.value, r.value)
    if r.name.endswith("_rate"):
        r.value = min(max(r.value, 0.0), 1.0)
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    elif r.name.endswith("_ms") and r.value <= 0:
        r.status, r.basis, r.value, r.ci = INSUFFICIENT, "none", None, None
        r.detail = "projected latency is not positive: the model does not describe this load"
        return r
    r.ci = (min(lo, r.value), max(hi, r.value)) if r.ci else None
    return r
