"""Gate criteria of the phase config evaluated into one verdict (``runformat.verdicts``).

A criterion is *measured* only at a steady-state step whose load really reached the gate
load (closed model: configured and observed users >= gate users; open model: the offered
rate >= the gate rate).  Otherwise it is *projected* from the USL / trend models with an
interval, and the verdict is PROJECTED — never PASS.  A measured criterion passes or
fails only when its whole 95 % interval is on one side of the limit; an interval that
straddles the limit is INCONCLUSIVE.  A deciding validity check that failed at the gate
step (or a run that did not complete) makes the verdict INVALID whatever the criteria say.

Criteria are defined once in ``runformat.criteria``; each is evaluated by the function
registered under its name (``analysis.criterion.evaluates``: ``analysis.gate_criteria``,
and the fault criteria in ``analysis.fault_criteria``), with the same signature, for the
pooled gate and for each route under ``gate.routes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analysis import fault_criteria, gate_criteria
from analysis import usl as usl_mod
from analysis.criterion import (
    FAIL,
    INCONCLUSIVE,
    INSUFFICIENT,
    PASS,
    PROJECTED_FAIL,
    PROJECTED_PASS,
    CriterionResult,
    GateContext,
    evaluator,
    with_interval,
)
from analysis.headroom import sanitize_criterion
from analysis.incidents import incident_text, overlaps, unplanned_incidents
from analysis.lost_data import lost_in_window, lost_text
from analysis.outcomes import load_period
from analysis.runs import Run
from analysis.steps import StepStats
from analysis.validity import Check
from runformat.criteria import CRITERIA, Criterion
from runformat.verdicts import Verdict

#: Modules whose evaluators register themselves on import (``analysis.criterion``).
EVALUATOR_MODULES = (gate_criteria, fault_criteria)
#: Observed users must reach this fraction of the gate load for a step to count as applied
#: (users stop and start continuously; Locust's count dips by a user or two).
APPLIED_FRACTION = 0.98


@dataclass
class GateResult:
    gate_load: float | None  # users (closed model) or arrivals/s (open model)
    step: str | None  # name of the measured gate step, None if not reached
    criteria: list[CriterionResult]
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)  # why INVALID / INCONCLUSIVE / ...
    advice: list[str] = field(default_factory=list)  # what to change
    host_cpu_percent: float | None = None  # whole host, at the gate step (or top step)
    load_unit: str = "users"
    lost_files: int = 0  # events files that did not parse (named among ``reasons``)
    #: what binds, hardware or architecture (analysis.binding; set by analysis.analyze)
    binds: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    @property
    def undecided(self) -> list[CriterionResult]:
        """Criteria measured at the gate step that a longer hold could still decide
        (``inconclusive``: interval straddles or still rising; ``insufficient data``:
        too few or too dependent records).  Empty when the step decided everything."""
        return [
            c
            for c in self.criteria
            if c.status in (INCONCLUSIVE, INSUFFICIENT) and self.step is not None
        ]

    def notes(self) -> list[str]:
        """Lines shown beside the verdict: why it is what it is, host CPU, what to change."""
        lines = [f"{self.verdict.value}: {self.verdict.meaning}"]
        lines += [f"Reason: {r}" for r in self.reasons]
        if self.host_cpu_percent is not None:
            lines.append(
                f"Whole-host CPU at the gate step: {self.host_cpu_percent:.0f}% "
                "(stack and load generator on this machine)"
            )
        lines += self.binds
        lines += [f"To change: {a}" for a in self.advice]
        return lines


def gate_load(run: Run) -> float | None:
    spec = run.gate_spec
    if run.model == "open":
        return spec.rate
    return float(spec.users) if spec.users else None


def gate_step(run: Run, steps: list[StepStats], load: float | None) -> StepStats | None:
    """Lowest-load steady step at or above the gate load that really applied it."""
    if load is None:
        return None
    ok = []
    for st in steps:
        if st.n == 0:
            continue
        if run.model == "open":
            applied = st.step.rate is not None and st.step.rate >= APPLIED_FRACTION * load
        else:
            applied = st.step.users >= load and st.users_observed >= APPLIED_FRACTION * load
        if applied:
            ok.append(st)
    return min(ok, key=lambda s: (s.load, -s.n)) if ok else None


def evaluate(
    run: Run, steps: list[StepStats], fit: usl_mod.USLFit, checks: list[Check] | None = None
) -> GateResult:
    spec = run.gate_spec
    load = gate_load(run)
    st = gate_step(run, steps, load)
    measured = [s for s in steps if s.n]
    top = max(measured, key=lambda s: s.load) if measured else None
    ctx = GateContext(run, steps, fit, spec, load, st, top)
    results = [
        r for n, lim in spec.criteria.items() for r in _criterion(ctx, CRITERIA[n], lim, None)
    ]
    for route, criteria in spec.routes.items():
        results += [
            r for n, lim in criteria.items() for r in _criterion(ctx, CRITERIA[n], lim, route)
        ]
    gate = GateResult(load, st.step.name if st else None, results, Verdict.NO_GATE)
    gate.load_unit = "arrivals/s" if run.model == "open" else "users"
    _decide(gate, checks or [], st or top, spec)
    _lost_data(gate, run, st or top)
    _incidents(gate, run, st or top)
    return gate


def _lost_data(gate: GateResult, run: Run, ref: StepStats | None) -> None:
    """Unreadable events files are named beside the verdict with the seconds of the gate
    window they cover; the window-coverage check (``validity.window_coverage``) counts
    those seconds as holes and decides whether the verdict stands."""
    if not run.lost_events:
        return
    gate.lost_files = len(run.lost_events)
    if ref is None:
        return
    lost = lost_in_window(run, ref.step.start_us, ref.step.end_us)
    if not lost:
        gate.reasons.append(
            f"{len(run.lost_events)} unreadable events file(s), none in the gate window"
        )
        return
    window = _window_text(ref.step.start_us - run.start_us, ref.step.end_us - run.start_us)
    stands = "the verdict stands" if gate.verdict != Verdict.INVALID else "see window_coverage"
    gate.reasons.append(
        f"lost data: {lost_text(lost, run.start_us)} (gate window {window}); their requests "
        f"are in no statistic, and window coverage counts them as holes: {stands}"
    )


def _window_text(a_us: int, b_us: int) -> str:
    return f"{a_us / 1e6:.0f}–{b_us / 1e6:.0f} s"


#: Criteria measured over the whole load period or over fault windows, not per step (see
#: their evaluators): ``evaluate_step`` leaves them out.
WHOLE_PERIOD = (
    "db_connection_errors",
    "job_completion_rate",
    "fault_detect_s",
    "fault_error_rate",
    "fault_p95_ms",
    "fault_order_failure_rate",
    "fault_recovery_s",
)


def evaluate_step(
    run: Run, steps: list[StepStats], fit: usl_mod.USLFit, st: StepStats
) -> list[CriterionResult]:
    """The gate's criteria at one steady-state step, as if it were the gate step.

    ``loadgate reproduce`` looks for the first step where one fails (a breaking point).
    Criteria of :data:`WHOLE_PERIOD` are left out: their value is not a step's, and the
    caller measures their per-step counterpart itself.
    """
    spec = run.gate_spec
    ctx = GateContext(run, steps, fit, spec, st.load, st, st)
    wanted = [(n, lim, None) for n, lim in spec.criteria.items()]
    wanted += [(n, lim, r) for r, criteria in spec.routes.items() for n, lim in criteria.items()]
    return [
        r
        for n, lim, route in wanted
        if n not in WHOLE_PERIOD
        for r in _criterion(ctx, CRITERIA[n], lim, route)
    ]


def _incidents(gate: GateResult, run: Run, ref: StepStats | None) -> None:
    """Unplanned incidents (a service stopped answering, no fault aimed at it) are named
    beside the verdict; one during the gate window makes it INVALID."""
    _, run_end = load_period(run)
    for incident in unplanned_incidents(run):
        text = incident_text(incident, run.start_us)
        window = (ref.step.start_us, ref.step.end_us) if ref is not None else None
        if window is not None and overlaps(incident, *window, run_end):
            gate.verdict = Verdict.INVALID
            gate.reasons.append(f"unplanned incident during the gate window: {text}")
            advice = (
                f"find why {incident.get('service')} stopped (logs/{incident.get('service')}.log"
                " in the run directory) and run again"
            )
            if advice not in gate.advice:
                gate.advice.append(advice)
        else:
            gate.reasons.append(f"unplanned incident outside the gate window: {text}")


def _decide(gate: GateResult, checks: list[Check], ref: StepStats | None, spec) -> None:
    """The verdict from validity first, then the criteria (runformat.verdicts)."""
    ref_name = ref.step.name if ref else None
    relevant = [c for c in checks if c.step is None or c.step == ref_name]
    failed = [c for c in relevant if c.decides and c.ok is False]
    host = next((c for c in relevant if c.name == "host_cpu"), None)
    gate.host_cpu_percent = host.observed if host else None
    if host is not None and host.ok is False:
        gate.advice.append(f"{host.detail}: {host.advice}")
    for c in failed:
        gate.reasons.append(f"{c.name}{' at ' + c.step if c.step else ''}: {c.detail}")
        if c.advice and c.advice not in gate.advice:
            gate.advice.append(c.advice)
    statuses = {r.status for r in gate.criteria}
    if failed:
        gate.verdict = Verdict.INVALID
    elif spec.empty:
        gate.verdict = Verdict.NO_GATE
    elif gate.step is None:
        gate.verdict = Verdict.PROJECTED
        gate.reasons.append(f"gate load {gate.gate_load or 0:g} {gate.load_unit} not applied")
    elif FAIL in statuses:
        gate.verdict = Verdict.FAIL
    elif statuses & {INCONCLUSIVE, INSUFFICIENT, PROJECTED_PASS, PROJECTED_FAIL}:
        gate.verdict = Verdict.INCONCLUSIVE
        gate.reasons += [f"{r.description}: {r.status}" for r in gate.criteria if r.status != PASS]
    else:
        gate.verdict = Verdict.PASS


def _criterion(
    ctx: GateContext, spec: Criterion, limit: float, route: str | None
) -> list[CriterionResult]:
    """One result, or one per injected fault (``analysis.degradation``'s evaluators)."""
    found = evaluator(spec.name)(ctx, spec, limit, route)
    out = []
    for r in found if isinstance(found, list) else [found]:
        r = sanitize_criterion(r, ctx.top)
        r.route = route
        out.append(with_interval(r, spec, limit))
    return out
