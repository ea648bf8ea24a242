"""One gate criterion's result: its statuses, its type, how evaluators build it, and
the registry of evaluators.

Every evaluator (``analysis.gate_criteria``, ``analysis.fault_criteria``) gets a
:class:`GateContext` and returns one :class:`CriterionResult` (or one per injected
fault) built with :func:`result` (status left for :func:`with_interval` to decide from
value, interval and basis) or :func:`insufficient`.  Evaluators register under the name
of their ``runformat.criteria`` entry with :func:`evaluates`: the criteria's declarative
data stays in the bottom layer, the code that measures them here.  This module imports
nothing of the gate itself, so gates and the fault criteria both build on it without a
loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from analysis import usl as usl_mod
from analysis.runs import Run
from analysis.steps import StepStats
from runformat.criteria import CRITERIA, Criterion
from runformat.gate import GateSpec

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
PROJECTED_PASS, PROJECTED_FAIL = "projected pass", "projected fail"
INSUFFICIENT = "insufficient data"
PENDING = ""  # a value whose status with_interval has not set yet


@dataclass
class CriterionResult:
    name: str  # registry name, e.g. "p95_ms"
    description: str  # e.g. "P95 < 2000 ms" or "POST /checkout: P95 < 2000 ms"
    status: str
    basis: str  # "measured" | "projected" | "none"
    value: float | None
    ci: tuple[float, float] | None
    load: float | None  # load the value refers to
    detail: str
    route: str | None = None  # None: pooled over every route

    @property
    def passed(self) -> bool:
        return self.status == PASS


@dataclass
class GateContext:
    """What every evaluator gets."""

    run: Run
    steps: list[StepStats]
    fit: usl_mod.USLFit
    gate: GateSpec
    gate_load: float | None
    step: StepStats | None  # the measured gate step
    top: StepStats | None  # highest-load step with data


Evaluated = CriterionResult | list[CriterionResult]
Evaluator = Callable[[GateContext, Criterion, float, str | None], Evaluated]

EVALUATORS: dict[str, Evaluator] = {}
"""Criterion name -> its evaluator, filled by :func:`evaluates` as the evaluator
modules are imported (``analysis.gates`` imports them all)."""


def evaluates(name: str) -> Callable[[Evaluator], Evaluator]:
    """Register the decorated function as the evaluator of criterion ``name``."""
    if name not in CRITERIA:
        raise KeyError(f"no criterion {name!r} in runformat.criteria")

    def register(fn: Evaluator) -> Evaluator:
        if name in EVALUATORS:
            raise KeyError(f"criterion {name!r} has two evaluators")
        EVALUATORS[name] = fn
        return fn

    return register


def evaluator(name: str) -> Evaluator:
    """The registered evaluator of criterion ``name``."""
    try:
        return EVALUATORS[name]
    except KeyError:
        raise KeyError(f"criterion {name!r} has no registered evaluator") from None


def result(
    spec: Criterion,
    limit: float,
    route: str | None,
    value: float | None,
    ci: tuple[float, float] | None,
    basis: str,
    load: float | None,
    detail: str,
) -> CriterionResult:
    """A result whose status :func:`with_interval` sets from value, interval and basis."""
    return CriterionResult(
        spec.name, spec.describe(limit, route), PENDING, basis, value, ci, load, detail
    )


def insufficient(
    spec: Criterion, limit: float, route: str | None, detail: str, load: float | None = None
) -> CriterionResult:
    """A result with no value: ``detail`` says why."""
    return CriterionResult(
        spec.name, spec.describe(limit, route), INSUFFICIENT, "none", None, None, load, detail
    )


def with_interval(r: CriterionResult, spec: Criterion, limit: float) -> CriterionResult:
    """Let the interval speak: an interval straddling the limit decides nothing.

    A result whose evaluator already decided it (by the window's course, or
    insufficient) keeps its status."""
    if r.value is None or r.status != PENDING:
        return r
    measured = r.basis == "measured"
    if r.ci is None:
        r.status = side(spec.ok(r.value, limit), measured)
        return r
    lo_ok, hi_ok = (spec.ok(v, limit) for v in r.ci)
    if lo_ok != hi_ok:
        span = f"[{r.ci[0]:.4g}, {r.ci[1]:.4g}]"
        r.status = INCONCLUSIVE if measured else INSUFFICIENT
        r.detail += f"; inconclusive: its 95% interval {span} straddles {limit:g}"
        return r
    r.status = side(lo_ok, measured)
    return r


def side(ok: bool, measured: bool) -> str:
    """The status of a value on one side of its limit."""
    if measured:
        return PASS if ok else FAIL
    return PROJECTED_PASS if ok else PROJECTED_FAIL
