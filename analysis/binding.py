"""What binds, in the terms leadership reads: hardware or architecture (issue 20, item 5).

The headroom table (:mod:`analysis.headroom`) names the constraint reached at the lowest
load.  That name alone does not say what to do about it, so every constraint is put in one
of three classes (DESIGN.md, "Verdicts"):

* ``hardware`` — CPU or memory of a process, and the whole host's CPU: it scales with the
  machine, so more cores (or memory) fix it.  For CPU the verdict says how many cores the
  gate load needs: the process's measured demand per request (:mod:`analysis.demands`)
  projected to the gate load exactly as ``loadgate plan`` projects a milestone
  (:func:`analysis.plan.demand_at`, utilisation law, the seed's 70 % planning
  line of §6.3) beside the cores this run had (:func:`analysis.cores.available_cores`).
* ``architecture`` — a limit of the seed's design: the DB connection cap, the PgBouncer
  pool, Stripe's rate limit, a lock or a queue.  More cores do not move it; only a later
  phase's architecture does, and the verdict names which phase and section.
* ``objective`` — the latency SLO and the error budget.  They are what is checked, not what
  limits: when one binds, the first *resource* constraint reached is named beside it.

Everything here restates measured crossings (basis from the headroom row) and one
projection (cores / memory needed at the gate load), each labelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analysis import demands as dm
from analysis import plan as cp
from analysis.cores import available_cores
from analysis.crossings import HOST_CPU, MEMORY_PLANNING_LINE, SLO_CONSTRAINTS, Constraint
from analysis.headroom import Headroom, memory_limit
from analysis.runs import Run
from analysis.steps import StepStats
from runformat.metrics import CPU_PERCENT, RSS_BYTES

HARDWARE, ARCHITECTURE, OBJECTIVE, UNCLASSIFIED = (
    "hardware",
    "architecture",
    "objective",
    "unclassified",
)


@dataclass(frozen=True)
class Fix:
    """The seed's change that lifts an architectural limit, and the phase it arrives in."""

    phase: int
    what: str
    section: str


@dataclass(frozen=True)
class ArchitectureLimit:
    what: str
    section: str
    fixes: tuple[Fix, ...]  # in phase order

    def next_fix(self, phase: int | None) -> Fix | None:
        """The first fix of a phase after ``phase`` (the run's); None past the seed's last."""
        return next((f for f in self.fixes if phase is None or f.phase > phase), None)


_REPLICAS = Fix(2, "read replicas take the reads off the primary", "§4.1")
_SHARDING = Fix(4, "database sharding", "§6.2")
_POOL = ArchitectureLimit("the PgBouncer pool", "§3.1", (_REPLICAS, _SHARDING))
#: Headroom constraint name -> the limit of the seed's design it measures.
ARCHITECTURE_LIMITS: dict[str, ArchitectureLimit] = {
    "DB connections": ArchitectureLimit(
        "the database's connection cap",
        "§1.1",
        (Fix(1, "PgBouncer connection pooling", "§3.1"), _REPLICAS, _SHARDING),
    ),
    "PgBouncer pool": _POOL,
    "PgBouncer client waits": _POOL,
    "Stripe rate limit": ArchitectureLimit(
        "Stripe's API rate limit",
        "§1.1, §4.4",
        (
            Fix(2, "Stripe customer caching", "§4.4"),
            Fix(3, "circuit breakers with fallbacks", "§5.5"),
        ),
    ),
}
#: Name prefixes of future constraint rows that are architectural by nature.
_ARCHITECTURE_PREFIXES = ("lock", "queue", "rate-limit table")
_LOCK = ArchitectureLimit("a lock or queue of the seed's design", "", ())


def classify(name: str) -> str:
    """hardware | architecture | objective | unclassified, from a headroom row's name."""
    if name in SLO_CONSTRAINTS:
        return OBJECTIVE
    if name == HOST_CPU or name.startswith(("CPU ", "memory ")):
        return HARDWARE
    if name in ARCHITECTURE_LIMITS or name.lower().startswith(_ARCHITECTURE_PREFIXES):
        return ARCHITECTURE
    return UNCLASSIFIED


def architecture_limit(name: str) -> ArchitectureLimit | None:
    if name in ARCHITECTURE_LIMITS:
        return ARCHITECTURE_LIMITS[name]
    return _LOCK if classify(name) == ARCHITECTURE else None


@dataclass
class Requirement:
    """Hardware needed at the gate load (projected from measured demands)."""

    resource: str  # "cores" | "memory"
    source: str  # the process, e.g. "process:marketplace"
    gate_load: float
    load_unit: str
    needed: float  # cores, or bytes
    needed_ci: tuple[float, float] | None
    had: float | None
    had_from: str
    planning_line: float  # fraction of the resource at which it is sized
    method: str


@dataclass
class Binding:
    """What binds a run, classified.  ``lines`` are what the verdict block prints."""

    constraint: Constraint | None  # the resource (hardware/architecture) constraint
    kind: str | None
    objective: Constraint | None  # the headroom's binding row when it is an objective
    requirement: Requirement | None = None
    fix: Fix | None = None
    limit: ArchitectureLimit | None = None
    kinds: dict[str, str] = field(default_factory=dict)  # every headroom row's class
    lines: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- sizing


def _demand_key(source: str) -> str | None:
    """The demand (analysis.demands) measured from ``source``'s cpu_percent, if any."""
    for spec in dm.RESOURCES:
        if spec.rate_unit == "cores" and (source, CPU_PERCENT) in spec.candidates:
            return spec.key
    return None


def cores_needed(
    run: Run,
    steps: list[StepStats],
    source: str,
    gate_load: float,
    demands: dm.Demands | None,
) -> Requirement | None:
    """Cores ``source`` needs at ``gate_load``: busy / 70 % from its measured demand.

    None when the run holds no demand for the process (then no number is invented).
    """
    key = _demand_key(source)
    if key is None or demands is None:
        return None
    proj = cp.demand_at(demands, key, gate_load, open_model=run.model == "open")
    if proj is None:
        return None
    had, where = available_cores(run, steps, source)
    return Requirement(
        "cores",
        source,
        gate_load,
        _unit(run),
        proj.required,
        proj.required_ci,
        had,
        where,
        cp.PLANNING_UTILISATION,
        f"busy {proj.load:.2f} cores at the gate load (utilisation law on the measured "
        f"demand per request) / {cp.PLANNING_UTILISATION:.0%}{_slowed(demands)}",
    )


#: CPU demands of the system under test's own processes, summed when they share the host.
#: (The Stripe mock stands in for Stripe's servers: not ours to size.)
SUT_CPU_DEMANDS = (
    "service_cpu",
    "postgres_cpu",
    "replica_cpu",
    "pgbouncer_cpu",
    "redis_cpu",
    "osrm_cpu",
)


def system_cores_needed(
    run: Run, steps: list[StepStats], gate_load: float, demands: dm.Demands | None
) -> Requirement | None:
    """Cores the system under test's processes need together at ``gate_load``: the sum of
    each one's busy / 70 % (:func:`cores_needed` per process), for a host they share.

    The interval is the sum of the per-process interval ends (conservative: it ignores
    that the processes' errors partly cancel).  None when no process demand was measured.
    """
    if demands is None:
        return None
    projs = [
        (key, p)
        for key in SUT_CPU_DEMANDS
        if (p := cp.demand_at(demands, key, gate_load, open_model=run.model == "open")) is not None
    ]
    if not projs:
        return None
    had, where = available_cores(run, steps, None)
    parts = ", ".join(f"{dm.RESOURCE_BY_KEY[k].label} {p.required:.1f}" for k, p in projs)
    return Requirement(
        "cores",
        "system under test",
        gate_load,
        _unit(run),
        sum(p.required for _, p in projs),
        (sum(p.required_ci[0] for _, p in projs), sum(p.required_ci[1] for _, p in projs)),
        had,
        where,
        cp.PLANNING_UTILISATION,
        f"sum of the processes' measured demands at the gate load: {parts}{_slowed(demands)}",
    )


def memory_needed(
    run: Run, steps: list[StepStats], source: str, gate_load: float
) -> Requirement | None:
    """Memory ``source`` needs at ``gate_load``: RSS vs load (straight line through the
    steps' means) at the gate load / the 80 % memory line.  None with fewer than 2 steps."""
    pts = [
        (st.load, v)
        for st in steps
        if (v := st.resources.get(source, {}).get(RSS_BYTES)) is not None
    ]
    if len({p[0] for p in pts}) < 2:
        return None
    slope, intercept = np.polyfit([p[0] for p in pts], [p[1] for p in pts], 1)
    rss = float(intercept + slope * gate_load)
    limit = memory_limit(run, steps, source)
    return Requirement(
        "memory",
        source,
        gate_load,
        _unit(run),
        max(rss, 0.0) / MEMORY_PLANNING_LINE,
        None,
        limit,
        "memory limit" if limit else "not recorded",
        MEMORY_PLANNING_LINE,
        "RSS linear in load through the steps' means",
    )


def _slowed(demands: dm.Demands) -> str:
    """Said beside a size when the run slowed its users down (the plan's assumption 2):
    the measured per-user rate understates what users offer, so the size is a lower bound."""
    trend = demands.per_user_trend
    if trend is None or trend >= -0.10:
        return ""
    return f"; a lower bound: the per-user request rate fell {-trend:.0%} across the steps"


def _unit(run: Run) -> str:
    return "arrivals/s" if run.model == "open" else "users"


# --------------------------------------------------------------------------- the verdict


def assess(
    run: Run,
    steps: list[StepStats],
    headroom: Headroom,
    gate_load: float | None,
    demands: dm.Demands | None = None,
) -> Binding:
    """Classify what binds ``run`` and size it (hardware) or name its fix (architecture).

    ``demands`` are estimated from the run when not given (and skipped, with no cores
    number, when the run cannot give them).
    """
    kinds = {c.name: classify(c.name) for c in headroom.constraints}
    top = headroom.binding
    objective = top if top is not None and kinds.get(top.name) == OBJECTIVE else None
    resources = [
        c
        for c in headroom.constraints
        if c.load is not None and kinds[c.name] in (HARDWARE, ARCHITECTURE) and c.name != HOST_CPU
    ]
    resource = top if top is not None and objective is None else None
    if resource is None and resources:
        resource = min(resources, key=lambda c: c.load)
    host = next((c for c in headroom.constraints if c.name == HOST_CPU), None)
    if resource is None and host is not None and host.load is not None:
        resource = host  # no process reached its line, the machine as a whole did
    out = Binding(resource, kinds.get(resource.name) if resource else None, objective, kinds=kinds)
    unit = _unit(run)
    if top is None:
        out.lines = [
            "Binds: no constraint reached at the measured loads nor projected within range "
            "(neither hardware nor architecture shown)."
        ]
        return out
    if objective is not None:
        out.lines.append(
            f"Binds: {objective.name} at {_where(objective, unit)} — an objective, not a "
            "resource; "
            + (
                "the first resource to reach its limit follows."
                if resource is not None
                else "no CPU, memory, pool or rate limit reached its limit (measured or "
                "projected): the samples name neither hardware nor architecture."
            )
        )
    if resource is None:
        return out
    if resource is host:
        out.lines.append(_host_line(run, steps, resource, gate_load, demands, out))
    elif out.kind == HARDWARE:
        out.lines.append(_hardware_line(run, steps, resource, gate_load, demands, out))
    elif out.kind == ARCHITECTURE:
        out.lines.append(_architecture_line(run, resource, out))
    else:
        out.lines.append(
            f"Binds: {resource.name} ({resource.limit}) at {_where(resource, unit)}: "
            "unclassified (neither hardware nor a known architectural limit)."
        )
    return out


def _where(c: Constraint, unit: str) -> str:
    text = f"{c.load:,.0f} {unit}"
    if c.ci:
        lo, hi = c.ci
        text += f" [{lo:,.0f}–{f'{hi:,.0f}' if math.isfinite(hi) else 'beyond range'}]"
    return f"{text} ({c.basis})"


def _hardware_line(
    run: Run,
    steps: list[StepStats],
    c: Constraint,
    gate_load: float | None,
    demands: dm.Demands | None,
    out: Binding,
) -> str:
    unit = _unit(run)
    what, source = ("CPU", c.name[4:]) if c.name.startswith("CPU ") else ("memory", c.name[7:])
    head = (
        f"Binds: {what} of {source} (hardware: more "
        f"{'cores' if what == 'CPU' else 'memory'} fix it), reached at {_where(c, unit)}."
    )
    if gate_load is None:
        return head + " No gate load configured: no size computed."
    if what == "CPU":
        if demands is None and _demand_key(source) is not None:
            demands = _estimate(run)
        req = cores_needed(run, steps, source, gate_load, demands)
        if req is None:
            return head + f" No measured CPU demand of {source}: cores needed not computed."
        out.requirement = req
        ci = f" [{req.needed_ci[0]:.1f}–{req.needed_ci[1]:.1f}]" if req.needed_ci else ""
        return (
            head + f" At the gate load ({gate_load:,.0f} {unit}) it needs ~{req.needed:.1f} "
            f"cores{ci} at the {req.planning_line:.0%} planning line (projected from measured "
            f"demands{_slowed(demands)}); this run had {req.had:g} ({req.had_from})."
        )
    req = memory_needed(run, steps, source, gate_load)
    if req is None:
        return head
    out.requirement = req
    had = f"{req.had / 2**30:.1f} GiB" if req.had else "an unrecorded limit"
    return (
        head + f" At the gate load ({gate_load:,.0f} {unit}) it needs ~"
        f"{req.needed / 2**30:.1f} GiB at the {req.planning_line:.0%} line (projected, "
        f"{req.method}); this run had {had}."
    )


def _host_line(
    run: Run,
    steps: list[StepStats],
    c: Constraint,
    gate_load: float | None,
    demands: dm.Demands | None,
    out: Binding,
) -> str:
    """The whole host past its planning line while no single process reached its own."""
    head = (
        f"Binds: host CPU (hardware: the whole machine, load generator included, past the "
        f"planning line; no single process reached its own), reached at "
        f"{_where(c, _unit(run))}."
    )
    if gate_load is None:
        return head + " No gate load configured: no size computed."
    req = system_cores_needed(run, steps, gate_load, demands or _estimate(run))
    if req is None:
        return head + " No measured CPU demand per process: cores needed not computed."
    out.requirement = req
    return (
        head + f" At the gate load ({gate_load:,.0f} {req.load_unit}) the system under test's "
        f"processes need ~{req.needed:.1f} cores [{req.needed_ci[0]:.1f}–"
        f"{req.needed_ci[1]:.1f}] together at the {req.planning_line:.0%} planning line "
        f"(projected, {req.method}); this run had {req.had:g} ({req.had_from}), shared with "
        "the load generator."
    )


def _architecture_line(run: Run, c: Constraint, out: Binding) -> str:
    limit = architecture_limit(c.name)
    out.limit = limit
    cite = f", seed {limit.section}" if limit and limit.section else ""
    head = (
        f"Binds: {c.name}, {c.limit} (architecture: {limit.what if limit else 'a design limit'}"
        f"{cite}; more cores do not fix it), reached at {_where(c, _unit(run))}."
    )
    fix = limit.next_fix(run.phase) if limit else None
    out.fix = fix
    if fix is None:
        return head + " No later phase of the seed changes it."
    return head + f" Only phase {fix.phase}'s architecture fixes it: {fix.what} ({fix.section})."


def _estimate(run: Run) -> dm.Demands | None:
    try:
        return dm.estimate([run])
    except dm.DemandError:
        return None
