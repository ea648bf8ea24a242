"""The regressions: each resource's busy rate on the routes' throughput (OLS with a
Newey-West covariance), per-persona request rates, and Redis memory against users.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import statsmodels.api as sm
from scipy import stats

from analysis.demands.records import _group_codes, _in_steps, _Records
from analysis.demands.resources import (
    ALL_USERS,
    CONFIDENCE,
    MIN_SECONDS,
    OPERATIONS,
    PER_ROUTE_INTERVALS,
    LevelModel,
    PersonaRate,
    ResourceDemand,
    ResourceSpec,
)
from analysis.runs import Run
from analysis.steps import Step


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
