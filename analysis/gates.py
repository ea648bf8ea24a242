"""Gate criteria of the phase config, each labelled measured or projected.

A criterion is *measured* only at a steady-state step whose load really reached the gate
load (configured and observed users >= gate users).  Otherwise it is *projected* from the
USL / trend models with an interval, and its status is "projected pass" or "projected
fail" — never "pass".  A run that never reached the gate load therefore cannot pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis import usl as usl_mod
from analysis.counters import counter_delta, hit_rate
from analysis.headroom import _trend_draws, project_p95, sanitize_criterion
from analysis.runs import Run
from analysis.steps import StepStats

PASS, FAIL = "pass", "fail"
PROJECTED_PASS, PROJECTED_FAIL = "projected pass", "projected fail"
INSUFFICIENT = "insufficient data"
#: Observed users must reach this fraction of the gate load for a step to count as applied
#: (users stop and start continuously; Locust's count dips by a user or two).
APPLIED_FRACTION = 0.98


@dataclass
class CriterionResult:
    name: str  # config key, e.g. "p95_ms"
    description: str  # e.g. "P95 < 2000 ms"
    status: str
    basis: str  # "measured" | "projected" | "none"
    value: float | None
    ci: tuple[float, float] | None
    load: float | None  # load the value refers to
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == PASS


@dataclass
class GateResult:
    gate_load: float | None
    step: str | None  # name of the measured gate step, None if not reached
    criteria: list[CriterionResult]
    # "PASS" | "FAIL" | "PROJECTED PASS" | "PROJECTED FAIL" | "INSUFFICIENT DATA" | "NO GATE"
    verdict: str


def gate_step(run: Run, steps: list[StepStats], gate_load: float) -> StepStats | None:
    """Lowest-load steady step at or above the gate load that really applied it."""
    ok = []
    for st in steps:
        if st.n == 0:
            continue
        if run.model == "open" and run.gate.get("rate") is not None:
            applied = st.step.rate is not None and st.step.rate >= float(run.gate["rate"])
        else:
            applied = (
                st.step.users >= gate_load and st.users_observed >= APPLIED_FRACTION * gate_load
            )
        if applied:
            ok.append(st)
    return min(ok, key=lambda s: (s.load, -s.n)) if ok else None


def _cmp(value: float, threshold: float, kind: str) -> bool:
    return {"lt": value < threshold, "le": value <= threshold, "ge": value >= threshold}[kind]


def _status(ok: bool, measured: bool) -> str:
    if measured:
        return PASS if ok else FAIL
    return PROJECTED_PASS if ok else PROJECTED_FAIL


def evaluate(run: Run, steps: list[StepStats], fit: usl_mod.USLFit) -> GateResult:
    gate = run.gate
    criteria_cfg = gate.get("criteria", {}) or {}
    # Accept criteria at gate top level too (p95_ms = 2000 beside users = 1500).
    for key in (
        "p95_ms",
        "error_rate",
        "db_connection_errors",
        "cache_hit_rate",
        "job_completion_rate",
    ):
        if key in gate and key not in criteria_cfg:
            criteria_cfg = {**criteria_cfg, key: gate[key]}
    if not criteria_cfg:
        return GateResult(None, None, [], "NO GATE")
    gate_load = float(gate.get("users", 0)) or None
    st = gate_step(run, steps, gate_load) if gate_load else None
    measured_steps = [s for s in steps if s.n]
    top = max(measured_steps, key=lambda s: s.load) if measured_steps else None
    results = []
    for key, threshold in criteria_cfg.items():
        results.append(_criterion(run, steps, fit, key, float(threshold), st, top, gate_load))
    return GateResult(gate_load, st.step.name if st else None, results, verdict(results))


def verdict(results: list[CriterionResult]) -> str:
    statuses = {r.status for r in results}
    if FAIL in statuses:
        return "FAIL"
    if statuses == {PASS}:
        return "PASS"
    if INSUFFICIENT in statuses:
        return "INSUFFICIENT DATA"
    if PROJECTED_FAIL in statuses:
        return "PROJECTED FAIL"
    return "PROJECTED PASS"


def _criterion(run, steps, fit, key, threshold, st, top, gate_load) -> CriterionResult:
    fn = _EVALUATORS.get(key)
    if fn is None:
        return CriterionResult(
            key,
            f"{key} {threshold:g}",
            INSUFFICIENT,
            "none",
            None,
            None,
            None,
            f"no evaluator for criterion {key!r} in this version",
        )
    return _with_interval(
        sanitize_criterion(fn(run, steps, fit, threshold, st, top, gate_load), top), threshold
    )


def _with_interval(r: CriterionResult, threshold: float) -> CriterionResult:
    """Let the interval speak.  A projection whose interval straddles the threshold
    decides nothing (insufficient data); a measured value whose interval straddles it
    keeps its point verdict but is marked marginal."""
    if r.ci is None or r.value is None or r.status == INSUFFICIENT:
        return r
    kind = _COMPARATORS[r.name]
    lo_ok, hi_ok = (_cmp(v, threshold, kind) for v in r.ci)
    if lo_ok == hi_ok:
        return r
    span = f"[{r.ci[0]:.4g}, {r.ci[1]:.4g}]"
    if r.basis == "projected":
        r.status = INSUFFICIENT
        r.detail += f"; projection inconclusive: its 95% interval {span} straddles {threshold:g}"
    else:
        r.detail += f"; marginal: the 95% interval {span} straddles {threshold:g}"
    return r


def _p95(run, steps, fit, thr, st, top, gate_load) -> CriterionResult:
    desc = f"P95 < {thr:g} ms"
    if st is not None:
        q = st.latency.p(0.95)
        if not q.has_interval:  # too few records, or too dependent for the window
            return CriterionResult(
                "p95_ms", desc, INSUFFICIENT, "measured", None, None, st.load, q.reason or ""
            )
        cor = st.corrected_latency.p(0.95) if st.corrected_latency else None
        extra = (
            f"; corrected for coordinated omission {cor.value_ms:.0f} ms" if cor and cor.ok else ""
        )
        return CriterionResult(
            "p95_ms",
            desc,
            _status(q.value_ms < thr, True),
            "measured",
            q.value_ms,
            (q.ci_low_ms, q.ci_high_ms),
            st.load,
            f"{q.n} requests at {st.users_observed:.0f} users{extra}",
        )
    if gate_load is None or run.model != "closed":
        return _not_reached("p95_ms", desc, top, gate_load)
    proj = project_p95(run, steps, fit, gate_load)
    if proj is None:
        return _not_reached(
            "p95_ms", desc, top, gate_load, f"no USL fit to project from ({fit.refused})"
        )
    value, ci = proj
    ext = ", extrapolated beyond 2x measured load" if gate_load > 2 * fit.max_measured else ""
    return CriterionResult(
        "p95_ms",
        desc,
        _status(value < thr, False),
        "projected",
        value,
        ci,
        gate_load,
        f"USL projection from {fit.max_measured:.0f} measured users{ext}",
    )


def _error_rate(run, steps, fit, thr, st, top, gate_load) -> CriterionResult:
    desc = f"errors < {thr:.2%}"
    if st is not None:
        return CriterionResult(
            "error_rate",
            desc,
            _status(st.error_rate < thr, True),
            "measured",
            st.error_rate,
            st.error_rate_ci,
            st.load,
            f"{st.n} requests; by class {_nonzero(st.errors_by_class)}",
        )
    if top is None or gate_load is None:
        return _not_reached("error_rate", desc, top, gate_load)
    loads = np.array([s.load for s in steps if s.n])
    rates = np.array([s.error_rate for s in steps if s.n])
    trend = _trend_draws(loads, rates)
    if trend is None:
        return CriterionResult(
            "error_rate",
            desc,
            _status(top.error_rate < thr, False),
            "projected",
            top.error_rate,
            top.error_rate_ci,
            gate_load,
            f"no upward trend; value at {top.load:.0f} users carried to the gate load",
        )
    slope, intercept, draws = trend
    value = intercept + slope * gate_load
    d = draws[:, 1] + draws[:, 0] * gate_load
    lo, hi = np.percentile(d, [2.5, 97.5], method="inverted_cdf")
    return CriterionResult(
        "error_rate",
        desc,
        _status(value < thr, False),
        "projected",
        float(value),
        (float(max(lo, 0)), float(hi)),
        gate_load,
        "linear trend of error rate vs load",
    )


def _nonzero(d: dict[str, int]) -> str:
    nz = {k: v for k, v in d.items() if v}
    return ", ".join(f"{k} {v}" for k, v in nz.items()) or "none"


def _db_errors(run, steps, fit, thr, st, top, gate_load) -> CriterionResult:
    desc = f"DB connection errors <= {thr:g}"
    ref = st or top
    if ref is None:
        return _not_reached("db_connection_errors", desc, top, gate_load)
    d = counter_delta(
        run.samples, "service", "db_connection_errors", ref.step.start_us, ref.step.end_us
    )
    if d is None:
        return CriterionResult(
            "db_connection_errors",
            desc,
            INSUFFICIENT,
            "none",
            None,
            None,
            ref.load,
            "service metric db_connection_errors not sampled",
        )
    measured = st is not None
    return CriterionResult(
        "db_connection_errors",
        desc,
        _status(d <= thr, measured),
        "measured" if measured else "projected",
        d,
        None,
        ref.load if measured else gate_load,
        "" if measured else f"count at {ref.load:.0f} users; gate load not applied",
    )


def _cache(run, steps, fit, thr, st, top, gate_load) -> CriterionResult:
    desc = f"cache hit rate >= {thr:.0%}"
    ref = st or top
    if ref is None:
        return _not_reached("cache_hit_rate", desc, top, gate_load)
    rate, src = hit_rate(run.samples, ref.step.start_us, ref.step.end_us)
    if rate is None:
        return CriterionResult(
            "cache_hit_rate", desc, INSUFFICIENT, "none", None, None, ref.load, src
        )
    measured = st is not None
    return CriterionResult(
        "cache_hit_rate",
        desc,
        _status(rate >= thr, measured),
        "measured" if measured else "projected",
        rate,
        None,
        ref.load if measured else gate_load,
        src if measured else f"{src} at {ref.load:.0f} users; gate load not applied",
    )


def _jobs(run, steps, fit, thr, st, top, gate_load) -> CriterionResult:
    desc = f"job completion >= {thr:.1%}"
    enq = counter_delta(run.samples, "service", "jobs_enqueued")
    done = counter_delta(run.samples, "service", "jobs_completed")
    if not enq or done is None:
        return CriterionResult(
            "job_completion_rate",
            desc,
            INSUFFICIENT,
            "none",
            None,
            None,
            None,
            "service metrics jobs_enqueued/jobs_completed not sampled",
        )
    rate = min(done / enq, 1.0)
    measured = st is not None
    return CriterionResult(
        "job_completion_rate",
        desc,
        _status(rate >= thr, measured),
        "measured" if measured else "projected",
        rate,
        None,
        gate_load,
        f"{done:.0f} of {enq:.0f} jobs over the whole run",
    )


def _not_reached(key, desc, top, gate_load, why: str = "") -> CriterionResult:
    load = f"{top.load:.0f}" if top else "no"
    return CriterionResult(
        key,
        desc,
        INSUFFICIENT,
        "none",
        None,
        None,
        gate_load,
        f"gate load {gate_load} not applied (max {load} users) and no "
        f"model to project from{'; ' + why if why else ''}",
    )


_COMPARATORS = {
    "p95_ms": "lt",
    "error_rate": "lt",
    "db_connection_errors": "le",
    "cache_hit_rate": "ge",
    "job_completion_rate": "ge",
}

_EVALUATORS = {
    "p95_ms": _p95,
    "error_rate": _error_rate,
    "db_connection_errors": _db_errors,
    "cache_hit_rate": _cache,
    "job_completion_rate": _jobs,
}
