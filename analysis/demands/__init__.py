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

import numpy as np
import pandas as pd

from analysis.demands.fit import _memory_model, fit_resource, persona_rates
from analysis.demands.records import (
    _find,
    _group_codes,
    _in_steps,
    _windowed,
    busy_series,
    read_records,
    route_groups,
    route_rates,
)
from analysis.demands.resources import (
    ALL_USERS,
    NOT_SAMPLED,
    RESOURCE_BY_KEY,
    RESOURCES,
    DemandError,
    Demands,
    ResourceDemand,
    ResourceSpec,
    StepLevel,
)
from analysis.runs import Run
from analysis.steps import Step, build_steps
from runformat.metrics import USED_MEMORY

__all__ = [
    "ALL_USERS",
    "RESOURCE_BY_KEY",
    "RESOURCES",
    "DemandError",
    "Demands",
    "ResourceDemand",
    "build_steps",
    "estimate",
    "read_records",
]


# --------------------------------------------------------------------------- records


# --------------------------------------------------------------------------- samples


# --------------------------------------------------------------------------- fitting


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
            mem = _step_mean(run.samples, "redis", USED_MEMORY, st)
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
