"""Each milestone's requirements: the phase config's users, mix and think time (read here),
every plan resource projected at its gate load against the seed's capacities, and the
verdict (ready / needs X / not ready / inconclusive).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from analysis import demands as dm
from analysis import seed_plan
from analysis.plan.model import (
    ResourceModel,
    UserLoad,
    interval,
    project,
    status,
    user_load,
)
from analysis.plan.types import (
    EGRESS,
    MEMORY,
    PLAN_RESOURCES,
    MilestonePlan,
    PlanError,
    Projection,
    fmt_amount,
)
from analysis.runs import Run
from runconfig.phase_config import ConfigError, load_phases
from runformat.metrics import POOL_SIZE


def milestone_config(config: Path | None):
    """The phase config whose milestones are planned; PlanError (one line) when it is bad."""
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
    for source, metric in (("pgbouncer", POOL_SIZE), ("service", "marketplace_db_pool_max_size")):
        for run in runs:
            s = run.samples
            if s.empty:
                continue
            v = s.loc[(s["source"] == source) & (s["metric"] == metric), "value"]
            if not v.empty and v.max() > 0:
                return float(v.max())
    return None


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
        status(req_ci, capacity and capacity.amount),
    )
    if capacity is not None and m.slope > 0:
        proj.binds_at = max((capacity.amount * util - m.intercept) / m.slope, 0.0)
    return proj


def _egress(d: dm.Demands, load: UserLoad, users: float) -> Projection:
    b = np.array([d.bytes_per_request.get(r, 0.0) for r in d.routes])
    point = float(load.at(users) @ b)
    draws = load.draws_at(users) @ b
    ci = interval(point, draws)
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
        p = project(res, models.get(res.key), load, users, cap, util)
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
            throughput_ci=interval(float(x.sum()), xd),
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
