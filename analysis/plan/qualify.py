"""The projection held against measurements: each run's own gate verdict on its own
hardware, and the backtest's error, as tags and caveats beside a milestone's verdict.
"""

from __future__ import annotations

import math

from analysis import demands as dm
from analysis import gates, saturation, validity
from analysis.cores import available_cores
from analysis.plan.types import (
    PLAN_RESOURCES,
    RELIABLE_BACKTEST_ERROR,
    Backtest,
    MeasuredGate,
    MilestonePlan,
)
from analysis.runs import Run
from analysis.step_stats import compute_step_stats
from analysis.steps import build_steps


def measured_gate(run: Run) -> MeasuredGate:
    """The run's gate evaluated as ``loadgate report`` evaluates it, and the cores each
    planned process had (:func:`analysis.cores.available_cores`)."""
    stats = compute_step_stats(run, build_steps(run))
    fit = saturation.fit_usl(stats, run.model)
    gate = gates.evaluate(run, stats, fit, validity.run_checks(run, stats))
    shared, where = available_cores(run, stats, None)
    cores = {}
    for res in PLAN_RESOURCES:
        if res.unit != "cores":
            continue
        sources = [
            src
            for key in res.demand
            for src, metric in dm.RESOURCE_BY_KEY[key].candidates
            if any(metric in st.resources.get(src, {}) for st in stats)
        ]
        cores[res.key], _ = available_cores(run, stats, sources[0] if sources else None)
    return MeasuredGate(
        run.run_id,
        run.phase,
        str(gate.verdict),
        gate.gate_load,
        gate.load_unit,
        gate.step,
        cores,
        where,
        shared,
    )


def qualify(m: MilestonePlan, measured: list[MeasuredGate], unreliable: str | None) -> None:
    """Tag a milestone's verdict with what the measurements say about it (issue 20 item 5).

    A run of the milestone's phase measured its gate on its own hardware: where the
    projection needs more cores than that run had, the verdict says it assumes more cores;
    where the measured gate FAILED and no more cores are needed, the projection is
    contradicted by the measurement.  A backtest error above 20 % marks it unreliable.
    """
    for g in measured:
        if g.phase != m.phase or g.verdict in ("PASS", "NO GATE"):
            continue  # a measured pass on the run's hardware supports the projection
        rows = [p for p in m.projections if p.resource.unit == "cores"]
        total = sum(p.required for p in rows)
        more = total > g.shared_cores or any(
            p.required > g.cores.get(p.resource.key, math.inf) for p in rows
        )
        where = (
            f"measured at {g.gate_load:,.0f} {g.load_unit} in step {g.step}"
            if g.step
            else "the gate load was not applied"
        )
        said = f"Run {g.run_id}'s own gate: {g.verdict} ({where}, on its own hardware)"
        if more:
            m.tags.append("assumes more cores than measured")
            m.caveats.append(
                f"{said}; '{m.verdict}' assumes {total:,.1f} cores for the system under "
                "test's processes ("
                + ", ".join(
                    f"{p.resource.label} {p.required:,.1f} "
                    f"[{p.required_ci[0]:,.1f}–{p.required_ci[1]:,.1f}]"
                    for p in rows
                )
                + f") where the run had {g.shared_cores:g} ({g.cores_from}): more cores "
                "than the measurement had."
            )
        elif g.verdict == "FAIL":
            m.tags.append("contradicted by the measured gate")
            m.caveats.append(
                f"{said}, although the projection needs no more cores than the run had: "
                "what failed is not in these demands (see the run report's 'Binds' line)."
            )
        else:
            m.caveats.append(f"{said}: the projection is not confirmed by a measurement.")
    if unreliable:  # the sentence itself is the plan's (CapacityPlan.unreliable), said once
        m.tags.append(f"unreliable: backtest error above {RELIABLE_BACKTEST_ERROR:.0%}")
    m.tags = list(dict.fromkeys(m.tags))  # several runs of one phase: each tag once


def reliability(backtests: list[Backtest]) -> str | None:
    """Why the projection is unreliable (the method's own backtest missed by more than
    20 %), else None."""
    bad = [
        b for b in backtests if b.max_error is not None and b.max_error > RELIABLE_BACKTEST_ERROR
    ]
    if not bad:
        return None
    worst = max(bad, key=lambda b: b.max_error)
    return (
        f"Unreliable projection: fitted on the lower steps, the method predicted run "
        f"{worst.run_id}'s highest step ({worst.target_step}, {worst.users:,.0f} users) with "
        f"a {worst.max_error:.0%} error (above {RELIABLE_BACKTEST_ERROR:.0%}): its "
        "milestone numbers are not to be relied on."
    )
