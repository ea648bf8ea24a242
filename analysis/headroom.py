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

from analysis import usl as usl_mod
from analysis.cores import (
    _cpu_sources,
    available_cores,
    is_system_under_test,
    resource_series,
)
from analysis.counters import counter_delta
from analysis.criterion import INSUFFICIENT
from analysis.crossings import (
    BEYOND,
    CPU_PLANNING_LINE,
    EXTRAPOLATION_LIMIT,
    HOST_CPU,
    MEMORY_PLANNING_LINE,
    NON_BINDING,
    SLO_CONSTRAINTS,
    Constraint,
    crossing,
    latency_constraint,
    utilization_crossing,
)
from analysis.runs import Run
from analysis.steps import StepStats
from runformat.metrics import (
    CL_WAITING,
    CONNECTIONS_TOTAL,
    CPU_PERCENT,
    MAX_CONNECTIONS,
    POOL_SIZE,
    RSS_BYTES,
    STRIPE_CALLS,
    SV_ACTIVE,
)
from runformat.schemas import HOST_CPU_METRIC, HOST_SOURCE


@dataclass
class Headroom:
    constraints: list[Constraint]
    binding: Constraint | None
    target: float | None
    sentence: str


def _cpu_utilisation(run: Run, steps: list[StepStats], source: str) -> list[float | None]:
    """cpu_percent (psutil convention: 100 = one core) as a percent of the cores available
    (:func:`available_cores`)."""
    cores, _ = available_cores(run, steps, source)
    return [None if v is None else v / cores for v in resource_series(steps, source, CPU_PERCENT)]


def host_cpu_constraint(steps: list[StepStats], fit: usl_mod.USLFit) -> Constraint | None:
    """Whole-host CPU (100 = every core) against the planning line: a headroom row.

    A row, never the binding constraint: the host counts the load generator too, so its
    crossing is not a limit of the system under test (``NON_BINDING``).  None when the
    host was not sampled.
    """
    values = resource_series(steps, HOST_SOURCE, HOST_CPU_METRIC)
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
    total = resource_series(steps, "postgres", CONNECTIONS_TOTAL)
    if any(v is not None for v in total):
        return total
    return resource_series(steps, "postgres", "connections_active")


def memory_limit(run: Run, steps: list[StepStats], source: str) -> float | None:
    lim = [v for v in resource_series(steps, source, "memory_limit_bytes") if v]
    if lim:
        return float(max(lim))
    host = run.manifest.get("host", {}) or {}
    mem = host.get("memory_bytes") or host.get("mem_total_bytes")
    return float(mem) if mem else None


def _stripe_rates(run: Run, steps: list[StepStats]) -> list[float | None]:
    out = []
    for st in steps:
        d = counter_delta(run.samples, "service", STRIPE_CALLS, st.step.start_us, st.step.end_us)
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
            if RSS_BYTES in m and is_system_under_test(s)
        }
    )
    for src in mem_sources:
        limit = memory_limit(run, steps, src)
        if limit:
            rss = [
                None if v is None else v / limit * 100
                for v in resource_series(steps, src, RSS_BYTES)
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
        ("DB connections", "postgres", MAX_CONNECTIONS, lambda: _db_connections(steps)),
        (
            "PgBouncer pool",
            "pgbouncer",
            POOL_SIZE,
            lambda: resource_series(steps, "pgbouncer", SV_ACTIVE),
        ),
    )
    for name, source, size_metric, in_use in pools:
        size = max((v for v in resource_series(steps, source, size_metric) if v), default=None)
        if size:
            limit = f"{size_metric} = {size:.0f}"
            cons.append(crossing(name, limit, loads, in_use(), float(size)))
    if any(v is not None for v in resource_series(steps, "pgbouncer", CL_WAITING)):
        cons.append(
            crossing(
                "PgBouncer client waits",
                "mean cl_waiting >= 1",
                loads,
                resource_series(steps, "pgbouncer", CL_WAITING),
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
