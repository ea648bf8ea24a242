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

from pathlib import Path

import numpy as np

from analysis import demands as dm
from analysis import seed_plan
from analysis.generator_sizing import size_generators
from analysis.plan.backtest import backtest, predict_throughput, seed_formula
from analysis.plan.curves import curves
from analysis.plan.milestones import milestone_config, milestone_plan, profile_pool, stripe_capacity
from analysis.plan.model import demand_at, resource_models
from analysis.plan.prose import assumptions, findings
from analysis.plan.qualify import measured_gate, qualify, reliability
from analysis.plan.types import (
    EGRESS,
    MILESTONE_PHASES,
    PLAN_RESOURCES,
    PLANNING_UTILISATION,
    RELIABLE_BACKTEST_ERROR,
    Backtest,
    BacktestRow,
    CapacityPlan,
    PlanError,
    Projection,
    fmt_amount,
)
from analysis.runs import Run

__all__ = [
    "EGRESS",
    "PLAN_RESOURCES",
    "PLANNING_UTILISATION",
    "RELIABLE_BACKTEST_ERROR",
    "Backtest",
    "BacktestRow",
    "CapacityPlan",
    "PlanError",
    "Projection",
    "backtest",
    "demand_at",
    "fmt_amount",
    "plan",
    "predict_throughput",
    "qualify",
    "reliability",
    "seed_formula",
]


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
        raise PlanError(
            f"planning utilisation {utilisation}: must be in (0, 1], e.g. {PLANNING_UTILISATION:g}"
        )
    phases_file = milestone_config(config)
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
        findings=findings(milestones, formulas, d),
        assumptions=assumptions(d, profiles, milestones),
        curves=curves(d, models, loads[-1], utilisation),
        stripe_limit=stripe,
        profile_pool=profile_pool(runs),
        warnings=warnings,
        measured_gates=measured,
        unreliable=unreliable,
        generator=size_generators(runs, milestones),
        phase_users={
            p: phases_file.phases[p].target_users
            for p in MILESTONE_PHASES
            if p in phases_file.phases
        },
    )
