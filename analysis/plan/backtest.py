"""How far the method holds on the run itself: fit on the lower steps and predict the
highest (the backtest), and the seed's own ``calculateCapacity`` on the top step.
"""

from __future__ import annotations

import numpy as np

from analysis import demands as dm
from analysis import seed_plan
from analysis.cores import available_cores
from analysis.plan.milestones import profile_pool
from analysis.plan.types import (
    MATERIAL,
    PLAN_RESOURCES,
    PLANNING_UTILISATION,
    Backtest,
    BacktestRow,
)
from analysis.runs import Run
from analysis.step_stats import compute_step_stats
from analysis.steps import build_steps
from runformat.metrics import CPU_PERCENT


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


def seed_formula(run: Run) -> dm.DemandError | seed_plan.SeedFormula:
    """§6.5 ``calculateCapacity`` on the run's highest steady step."""
    stats = [s for s in compute_step_stats(run, build_steps(run)) if s.n]
    if not stats:
        return dm.DemandError("no steady step")
    top = max(stats, key=lambda s: s.load)
    cpu, source = None, "not sampled"
    for src in ("process:marketplace", "service"):
        v = top.resources.get(src, {}).get(CPU_PERCENT)
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
