"""The evaluators of the gate's own criteria (P95, error rate, payment deferred, DB
connection errors, cache hit rate, job completion), registered under their
``runformat.criteria`` names with ``analysis.criterion.evaluates``.

Each reads the gate step (``GateContext.step``) when the gate load was applied and
decides by its interval and its course through the window (``_decided``); otherwise it
projects from the USL / trend models (``basis="projected"``), or says why it cannot.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from analysis import sustain
from analysis.counters import counter_over_period, hit_rate
from analysis.criterion import (
    FAIL,
    INCONCLUSIVE,
    INSUFFICIENT,
    PASS,
    CriterionResult,
    GateContext,
    evaluates,
    insufficient,
    result,
    with_interval,
)
from analysis.crossings import project_p95, trend_draws
from analysis.jobs import job_completion
from analysis.outcomes import error_mask, load_period, window_mask
from analysis.percentiles import proportion_ci
from analysis.step_stats import latency_stats
from analysis.steps import EndpointStats, StepStats
from runformat.criteria import Criterion
from runformat.schemas import DB_CONNECTION_ERRORS, PAYMENT_PENDING


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
