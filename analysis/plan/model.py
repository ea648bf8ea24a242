"""The plan's model: route throughput as a function of users (per-user rates of each
persona, rescaled by the milestone's mix and think time) and each resource's busy rate
by the utilisation law, with intervals from drawing demands and rates together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis import demands as dm
from analysis import seed_plan
from analysis.plan.types import (
    DRAWS,
    PLAN_RESOURCES,
    PLANNING_UTILISATION,
    PlanResource,
    Projection,
)


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


def interval(point: float, draws: np.ndarray) -> tuple[float, float]:
    lo, hi = np.nanpercentile(draws, [2.5, 97.5])
    return (min(float(lo), point), max(float(hi), point))


def status(ci: tuple[float, float], capacity: float | None) -> str:
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


def project(
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
    ci = interval(point, model.busy_draws(load, users))
    ci = (max(ci[0], min(point, 0.0)), ci[1])  # a busy rate is never below 0
    req = (point / util, (ci[0] / util, ci[1] / util))
    proj = Projection(
        res, point, ci, req[0], req[1], capacity, status(req[1], capacity and capacity.amount)
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
    return project(res, model, users_load, load, None, util)
