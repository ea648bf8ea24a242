"""The graceful-degradation criteria (seed §5.5), one result per injected fault,
registered under their ``runformat.criteria`` names with ``analysis.criterion.evaluates``.

Each reads the fault's measurement (``analysis.degradation.measure``, once per gate
evaluation) and says time to detect, time to recover, catalogue/cart errors and P95
during the fault, and order failures from the fault to its recovery.
"""

from __future__ import annotations

from collections.abc import Callable

from analysis.criterion import (
    INSUFFICIENT,
    CriterionResult,
    GateContext,
    evaluates,
    insufficient,
    result,
)
from analysis.degradation import FaultMeasure, measure
from analysis.percentiles import proportion_ci
from runformat.criteria import Criterion


def _measures(ctx: GateContext) -> list[FaultMeasure]:
    """Measured once per gate evaluation (every degradation criterion reads them)."""
    cached = ctx.__dict__.get("_degradation")
    if cached is None:
        cached = ctx.__dict__["_degradation"] = measure(ctx.run)
    return cached


def _per_fault(
    ctx: GateContext,
    spec: Criterion,
    limit: float,
    route: str | None,
    one: Callable[[FaultMeasure], CriterionResult | None],
) -> list[CriterionResult]:
    measures = _measures(ctx)
    if not measures:
        return [
            insufficient(
                spec, limit, route,
                "no fault was injected: graceful degradation is measured by a fault run "
                "(the phase's faults in config/phases.toml, or --fault)",
            )
        ]  # fmt: skip
    results = [r for r in (one(m) for m in measures) if r is not None]
    return results or [insufficient(spec, limit, route, "no injected fault to which this applies")]


def _censored(
    ctx: GateContext, spec: Criterion, limit: float, m: FaultMeasure, value: float, why: str
) -> CriterionResult:
    """A lower bound: fails when already beyond the limit, else decides nothing."""
    if not spec.ok(value, limit):
        return result(spec, limit, m.label, value, None, "measured", m.users,
                      f"{why} (at least {value:.0f} s)")  # fmt: skip
    return insufficient(spec, limit, m.label, why, m.users)


@evaluates("fault_detect_s")
def fault_detect_s(
    ctx: GateContext, spec: Criterion, limit: float, route: str | None
) -> list[CriterionResult]:
    """Fault start to the guarding breaker open; ±1 s for the 1 Hz samples."""

    def one(m: FaultMeasure) -> CriterionResult | None:
        if m.detect_s is None:
            if m.detect_note.startswith("no circuit breaker"):
                return None
            return _censored(ctx, spec, limit, m, (m.end_us - m.start_us) / 1e6, m.detect_note)
        ci = (max(m.detect_s - 1.0, 0.0), m.detect_s)
        return result(spec, limit, m.label, m.detect_s, ci, "measured", m.users,
                      m.detect_note)  # fmt: skip

    return _per_fault(ctx, spec, limit, route, one)


@evaluates("fault_recovery_s")
def fault_recovery_s(
    ctx: GateContext, spec: Criterion, limit: float, route: str | None
) -> list[CriterionResult]:
    """Fault end to the last sign of degradation (seed §5.5: within 1 minute)."""

    def one(m: FaultMeasure) -> CriterionResult | None:
        assert m.recovery_s is not None
        if m.recovery_censored:
            return _censored(ctx, spec, limit, m, m.recovery_s, m.recovery_note)
        ci = (max(m.recovery_s - 1.0, 0.0), m.recovery_s + 1.0)
        return result(spec, limit, m.label, m.recovery_s, ci, "measured", m.users,
                      f"{m.recovery_note}; {m.mix_text()}")  # fmt: skip

    return _per_fault(ctx, spec, limit, route, one)


@evaluates("fault_error_rate")
def fault_error_rate(
    ctx: GateContext, spec: Criterion, limit: float, route: str | None
) -> list[CriterionResult]:
    """Catalogue and cart requests that failed during the fault."""

    def one(m: FaultMeasure) -> CriterionResult | None:
        if not m.paths_n:
            return insufficient(spec, limit, m.label, m.p95_note, m.users)
        detail = f"{m.paths_errors} of {m.paths_n} catalogue/cart requests failed"
        rate = m.paths_errors / m.paths_n
        return result(spec, limit, m.label, rate, m.paths_error_ci, "measured", m.users,
                      detail)  # fmt: skip

    return _per_fault(ctx, spec, limit, route, one)


@evaluates("fault_p95_ms")
def fault_p95_ms(
    ctx: GateContext, spec: Criterion, limit: float, route: str | None
) -> list[CriterionResult]:
    """P95 of catalogue and cart requests during the fault (no interval: decides nothing)."""

    def one(m: FaultMeasure) -> CriterionResult | None:
        if m.p95_ms is None:
            return insufficient(spec, limit, m.label, m.p95_note, m.users)
        detail = f"{m.paths_n} catalogue/cart requests during the fault"
        if m.p95_ci is None:
            return CriterionResult(spec.name, spec.describe(limit, m.label), INSUFFICIENT,
                                   "measured", m.p95_ms, None, m.users,
                                   f"{detail}; {m.p95_note}")  # fmt: skip
        return result(spec, limit, m.label, m.p95_ms, m.p95_ci, "measured", m.users,
                      detail)  # fmt: skip

    return _per_fault(ctx, spec, limit, route, one)


@evaluates("fault_order_failure_rate")
def fault_order_failure_rate(
    ctx: GateContext, spec: Criterion, limit: float, route: str | None
) -> list[CriterionResult]:
    """Checkouts that failed (not paid, not deferred, not a declined card) from the fault's
    start to its recovery (seed §5.5: < 1 % vs a 100 % cascade)."""

    def one(m: FaultMeasure) -> CriterionResult | None:
        if not m.orders:
            return insufficient(spec, limit, m.label, m.mix_text(), m.users)
        k, n = m.order_failures, m.orders
        return result(spec, limit, m.label, k / n, proportion_ci(k, n), "measured",
                      m.users, m.mix_text())  # fmt: skip

    return _per_fault(ctx, spec, limit, route, one)
