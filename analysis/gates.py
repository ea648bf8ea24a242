"""Gate criteria of the phase config evaluated into one verdict (``runformat.verdicts``).

A criterion is *measured* only at a steady-state step whose load really reached the gate
load (closed model: configured and observed users >= gate users; open model: the offered
rate >= the gate rate).  Otherwise it is *projected* from the USL / trend models with an
interval, and the verdict is PROJECTED — never PASS.  A measured criterion passes or
fails only when its whole 95 % interval is on one side of the limit; an interval that
straddles the limit is INCONCLUSIVE.  A deciding validity check that failed at the gate
step (or a run that did not complete) makes the verdict INVALID whatever the criteria say.

Criteria are defined once in ``runformat.criteria``; each is evaluated by the function
registered under its name (``analysis.criterion.evaluates``: ``p95``, ``error_rate``, ...
below, the fault criteria in ``analysis.degradation``), with the same signature, for the
pooled gate and for each route under ``gate.routes``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from analysis import degradation, sustain
from analysis import usl as usl_mod
from analysis.counters import counter_over_period, hit_rate
from analysis.criterion import (
    FAIL,
    INCONCLUSIVE,
    INSUFFICIENT,
    PASS,
    PROJECTED_FAIL,
    PROJECTED_PASS,
    CriterionResult,
    GateContext,
    evaluates,
    evaluator,
    insufficient,
    result,
    with_interval,
)
from analysis.headroom import project_p95, sanitize_criterion, trend_draws
from analysis.incidents import incident_text, overlaps, unplanned_incidents
from analysis.jobs import job_completion
from analysis.outcomes import error_mask, load_period, window_mask
from analysis.percentiles import proportion_ci
from analysis.runs import Run
from analysis.steps import EndpointStats, StepStats, latency_stats
from analysis.validity import Check
from runformat.criteria import CRITERIA, Criterion
from runformat.schemas import DB_CONNECTION_ERRORS, PAYMENT_PENDING
from runformat.verdicts import Verdict

#: Modules whose evaluators register themselves on import (``analysis.criterion``).
EVALUATOR_MODULES = (degradation,)
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
    from analysis.validity import lost_in_window, lost_text

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


def _endpoint(st: StepStats, route: str) -> EndpointStats | None:
    return next((e for e in st.endpoints if e.endpoint == route), None)


def _route_mask(ctx: GateContext, route: str | None) -> np.ndarray:
    """Records of the gate step's window (and of ``route`` when given)."""
    run, st = ctx.run, ctx.step
    assert st is not None
    m = window_mask(run, st.step.start_us, st.step.end_us)
    if route is not None:
        m &= run.events.endpoint.codes == run.events.endpoint.code_of(route)
    return m


# --- evaluators (registered under their runformat.criteria names) -----------------------


@evaluates("p95_ms")
def p95(ctx: GateContext, spec: Criterion, limit: float, route: str | None) -> CriterionResult:
    """P95 at the gate step; the open model's from the intended start (no coordinated
    omission: a request the generator sent late still waited from when it was due).

    Decided by its dependence-aware interval, or by its course through the window
    (``analysis.sustain``): above the limit throughout and rising or far beyond it is
    FAIL, far inside it throughout is PASS, rising toward it holds the criterion."""
    st = ctx.step
    if st is not None:
        open_model = ctx.run.model == "open"
        if route is None:
            lat = st.corrected_latency if open_model else st.latency
        elif open_model:
            lat = latency_stats(ctx.run.events.intended_latency_us[_route_mask(ctx, route)])
        else:
            ep = _endpoint(st, route)
            lat = ep.latency if ep else None
        if lat is None:
            return insufficient(spec, limit, route, f"no {route} requests", st.load)
        q = lat.p(0.95)
        course = _course_p95(ctx, route, limit)
        basis = "from the intended start" if open_model else "from the actual send"
        detail = f"{q.n} requests at {_load_text(ctx, st)}; latency {basis}"
        return _decided(ctx, spec, limit, route, q.value_ms, q.ci_low_ms, q.ci_high_ms,
                        q.reason, course, detail)  # fmt: skip
    if route is not None or ctx.gate_load is None or ctx.run.model != "closed":
        return _not_reached(ctx, spec, limit, route)
    proj = project_p95(ctx.run, ctx.steps, ctx.fit, ctx.gate_load)
    if proj is None:
        return _not_reached(ctx, spec, limit, route, f"no USL fit ({ctx.fit.refused})")
    value, ci = proj
    far = ctx.gate_load > 2 * ctx.fit.max_measured
    ext = ", extrapolated beyond 2x the measured load" if far else ""
    return result(
        spec, limit, route, value, ci, "projected", ctx.gate_load,
        f"USL projection from {ctx.fit.max_measured:.0f} measured users{ext}",
    )  # fmt: skip


def _course_p95(ctx: GateContext, route: str | None, limit: float) -> sustain.Decision:
    """The P95's course through the gate step's window, batch by batch."""
    st = ctx.step
    assert st is not None
    m = _route_mask(ctx, route)
    ev = ctx.run.events
    lat = ev.intended_latency_us if ctx.run.model == "open" else ev.latency_us
    b = sustain.batch_quantiles(lat[m] / 1000.0, ev.ts_us[m], st.step.start_us, st.step.end_us,
                                0.95)  # fmt: skip
    return sustain.decide(b, limit, lambda v: f"{v:,.0f} ms")


def _course_errors(ctx: GateContext, route: str | None, limit: float) -> sustain.Decision:
    st = ctx.step
    assert st is not None
    m = _route_mask(ctx, route)
    b = sustain.batch_ratios(error_mask(ctx.run)[m], ctx.run.events.ts_us[m],
                             st.step.start_us, st.step.end_us)  # fmt: skip
    return sustain.decide(b, limit, lambda v: f"{v:.2%}")


def _decided(
    ctx: GateContext,
    spec: Criterion,
    limit: float,
    route: str | None,
    value: float | None,
    low: float | None,
    high: float | None,
    why_no_interval: str | None,
    course: sustain.Decision,
    detail: str,
    floor_high: float | None = None,
) -> CriterionResult:
    """A measured upper-limit criterion from its interval and its course in the window.

    Order: a window that does not sustain the load FAILs whatever the interval; an
    interval wholly on one side decides next (a rising course never lets it PASS);
    without an interval, a course far inside the limit PASSes.  ``floor_high``: an
    upper bound the value can never be shown below (the independent-records bound of
    an error rate: rule of three with no errors), so a far-inside course cannot PASS
    on too few requests.
    """
    st = ctx.step
    assert st is not None
    desc = spec.describe(limit, route)

    def done(status: str, text: str) -> CriterionResult:
        ci = (low, high) if low is not None and high is not None else None
        return CriterionResult(spec.name, desc, status, "measured", value, ci, st.load, text)

    if value is None:
        return done(INSUFFICIENT, why_no_interval or "no value")
    if course.status == sustain.FAIL:
        return done(FAIL, f"{detail}; {course.reason}: the system does not sustain "
                          f"{_load_text(ctx, st)}")  # fmt: skip
    if low is not None and high is not None:
        r = with_interval(result(spec, limit, route, value, (low, high), "measured",
                                  st.load, detail), spec, limit)  # fmt: skip
        if r.status == PASS and course.status == sustain.RISING:
            r.status = INCONCLUSIVE
            r.detail += f"; held: {course.reason}"
        return r
    if course.status == sustain.PASS and (floor_high is None or spec.ok(floor_high, limit)):
        return done(PASS, f"{detail}; {course.reason}")
    if course.status == sustain.RISING:
        return done(INCONCLUSIVE, f"{detail}; {course.reason}")
    return done(INSUFFICIENT, f"{why_no_interval or 'no interval'}; {course.reason}")


def _load_text(ctx: GateContext, st: StepStats) -> str:
    if ctx.run.model == "open":
        return f"{st.load:g} arrivals/s offered"
    return f"{st.users_observed:.0f} users"


def _dropped(ctx: GateContext, st: StepStats) -> int:
    a = ctx.run.arrivals
    if ctx.run.model != "open" or a is None or a.empty:
        return 0
    win = a[(a["ts_us"] >= st.step.start_us) & (a["ts_us"] < st.step.end_us)]
    return int(win["dropped"].sum())


@evaluates("error_rate")
def error_rate(
    ctx: GateContext, spec: Criterion, limit: float, route: str | None
) -> CriterionResult:
    """Failed requests / requests at the gate step.  Open model: every dropped arrival
    (a flow never started) counts as one failed request, exactly (it is counted, not
    sampled): the interval of the recorded part is shifted by the dropped count."""
    st = ctx.step
    if st is not None:
        if route is None:
            n, rate, ci = st.n, st.error_rate, st.error_rate_ci
            detail = f"{st.n} requests; by class {_nonzero(st.errors_by_class)}"
        else:
            m = _route_mask(ctx, route)
            n = int(np.count_nonzero(m))
            if not n:
                return insufficient(spec, limit, route, f"no {route} requests", st.load)
            k = int(np.count_nonzero(error_mask(ctx.run)[m]))
            rate, ci = k / n, proportion_ci(k, n)
            detail = f"{k} of {n} {route} requests failed"
        k_err = round(rate * n)
        dropped = _dropped(ctx, st) if route is None else 0
        floor = proportion_ci(k_err + dropped, n + dropped)[1]  # independent records
        if dropped:
            total = n + dropped
            rate = (rate * n + dropped) / total
            ci = ((ci[0] * n + dropped) / total, (ci[1] * n + dropped) / total)
            detail += f"; {dropped} dropped arrivals counted as failures"
        note = st.interval_notes.get("error_rate", "") if route is None else ""
        refused = route is None and note.startswith("insufficient")
        # dropped arrivals are not in the records' batches: only the interval decides then
        course = (_course_errors(ctx, route, limit) if not dropped
                  else sustain.Decision(None, "dropped arrivals"))  # fmt: skip
        low, high = (None, None) if refused else ci
        return _decided(ctx, spec, limit, route, rate, low, high, note, course, detail,
                        floor_high=floor)  # fmt: skip
    if route is not None or ctx.top is None or ctx.gate_load is None:
        return _not_reached(ctx, spec, limit, route)
    top = ctx.top
    loads = np.array([s.load for s in ctx.steps if s.n])
    rates = np.array([s.error_rate for s in ctx.steps if s.n])
    trend = trend_draws(loads, rates)
    if trend is None:
        return result(
            spec, limit, route, top.error_rate, top.error_rate_ci, "projected",
            ctx.gate_load, f"no upward trend; value at {top.load:.0f} carried to the gate load",
        )  # fmt: skip
    slope, intercept, draws = trend
    value = intercept + slope * ctx.gate_load
    d = draws[:, 1] + draws[:, 0] * ctx.gate_load
    lo, hi = np.percentile(d, [2.5, 97.5], method="inverted_cdf")
    return result(
        spec, limit, route, float(value), (float(max(lo, 0)), float(hi)), "projected",
        ctx.gate_load, "linear trend of error rate vs load",
    )  # fmt: skip


@evaluates("payment_pending_rate")
def payment_pending_rate(
    ctx: GateContext, spec: Criterion, limit: float, route: str | None
) -> CriterionResult:
    """Share of requests (of ``route``) answered ``payment_pending`` at the gate step."""
    st = ctx.step
    if st is None:
        return _not_reached(ctx, spec, limit, route)
    m = _route_mask(ctx, route)
    n = int(np.count_nonzero(m))
    if not n:
        return insufficient(spec, limit, route, "no requests in the gate step", st.load)
    code = ctx.run.events.outcome.code_of(PAYMENT_PENDING)
    k = int(np.count_nonzero(ctx.run.events.outcome.codes[m] == code)) if code >= 0 else 0
    return result(
        spec, limit, route, k / n, proportion_ci(k, n), "measured", st.load,
        f"{k} of {n} {route or 'requests'} answered 202 payment_pending",
    )  # fmt: skip


@evaluates("db_connection_errors")
def db_connection_errors(
    ctx: GateContext, spec: Criterion, limit: float, route: str | None
) -> CriterionResult:
    """Counted over the whole load period (not only steady windows): an error during a
    ramp or the drain is still an error the architecture made."""
    start, end = load_period(ctx.run)
    return _sampled_at_gate(
        ctx, spec, limit, route,
        lambda ref: counter_over_period(
            ctx.run.samples, "service", DB_CONNECTION_ERRORS, start, end
        ),
        "{how}; gate load not applied",
    )  # fmt: skip


@evaluates("cache_hit_rate")
def cache_hit_rate(
    ctx: GateContext, spec: Criterion, limit: float, route: str | None
) -> CriterionResult:
    return _sampled_at_gate(
        ctx, spec, limit, route,
        lambda ref: hit_rate(ctx.run.samples, ref.step.start_us, ref.step.end_us),
        "{how} at {load:.0f}; gate load not applied",
    )  # fmt: skip


def _sampled_at_gate(
    ctx: GateContext,
    spec: Criterion,
    limit: float,
    route: str | None,
    read: Callable[[StepStats], tuple[float | None, str]],
    projected: str,
) -> CriterionResult:
    """A value read from the samples at the gate step; without one, at the top step.

    ``read`` gives the value and how it was obtained for a reference step. Read at
    the top step it is labelled projected (``projected`` formats its detail from
    ``how`` and ``load``), so it can never make a PASS.
    """
    ref = ctx.step or ctx.top
    if ref is None:
        return _not_reached(ctx, spec, limit, route)
    value, how = read(ref)
    if value is None:
        return insufficient(spec, limit, route, how, ref.load)
    if ctx.step is not None:
        return result(spec, limit, route, value, None, "measured", ref.load, how)
    detail = projected.format(how=how, load=ref.load)
    return result(spec, limit, route, value, None, "projected", ctx.gate_load, detail)


@evaluates("job_completion_rate")
def job_completion_rate(
    ctx: GateContext, spec: Criterion, limit: float, route: str | None
) -> CriterionResult:
    """Batch and payout jobs enqueued during the load that completed, from the queue's own
    counters (``analysis.jobs``), with an exact binomial interval: 20 of 20 jobs cannot show
    99.9 %, so a short run is INCONCLUSIVE on it, never PASS."""
    rate, ci, detail = job_completion(ctx.run, *load_period(ctx.run))
    if rate is None:
        return insufficient(spec, limit, route, detail)
    if ci is not None and ci[0] < limit <= 1.0 and rate >= limit:
        detail += f"; showing >= {limit:.2%} needs >= {_jobs_needed(limit):,} jobs and no failure"
    measured = ctx.step is not None
    return result(
        spec, limit, route, rate, ci, "measured" if measured else "projected",
        ctx.gate_load, detail,
    )  # fmt: skip


def _jobs_needed(limit: float, confidence: float = 0.95) -> int:
    """Fewest successes in a row whose exact two-sided lower bound reaches ``limit``."""
    return math.ceil(math.log((1 - confidence) / 2) / math.log(limit)) if 0 < limit < 1 else 0


def _nonzero(d: dict[str, int]) -> str:
    nz = {k: v for k, v in d.items() if v}
    return ", ".join(f"{k} {v}" for k, v in nz.items()) or "none"


def _not_reached(ctx: GateContext, spec, limit, route, why: str = "") -> CriterionResult:
    top = f"{ctx.top.load:.0f}" if ctx.top else "no"
    return insufficient(
        spec, limit, route,
        f"gate load {ctx.gate_load} not applied (max {top}) and no model to project "
        f"from{'; ' + why if why else ''}",
        ctx.gate_load,
    )  # fmt: skip
