"""The registry of gate criteria: defined once, read everywhere.

Config validation (``runconfig.phase_config``) accepts exactly these names and bounds,
``analysis.gates`` evaluates each with the evaluator registered under its name in
``analysis.criterion`` and compares with its comparison, and reports describe each with
:meth:`Criterion.describe`.  Only the declarative data lives here: this package is the
bottom layer and names no code of ``analysis``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Comparison = Literal["lt", "le", "ge"]
Unit = Literal["ms", "s", "ratio", "count"]
_SYMBOL = {"lt": "<", "le": "<=", "ge": ">="}


@dataclass(frozen=True)
class Criterion:
    """One gate criterion: its config key, how a value is compared with the limit."""

    name: str
    label: str  # what is measured, e.g. "P95"
    comparison: Comparison
    unit: Unit
    per_route: bool  # may also be set per route under gate.routes
    help: str

    def ok(self, value: float, limit: float) -> bool:
        """True when ``value`` is on the right side of ``limit``."""
        if self.comparison == "lt":
            return value < limit
        if self.comparison == "le":
            return value <= limit
        return value >= limit

    def describe(self, limit: float, route: str | None = None) -> str:
        """e.g. ``P95 < 2000 ms`` or ``POST /checkout: errors < 1.00%``."""
        text = f"{self.label} {_SYMBOL[self.comparison]} {format_value(self.unit, limit)}"
        return f"{route}: {text}" if route else text

    def check_limit(self, limit: Any) -> float:
        """The limit as a float; ValueError naming the allowed range otherwise."""
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise ValueError(f"{self.name} must be a number")
        if self.unit == "ratio" and not 0 <= limit <= 1:
            raise ValueError(f"{self.name} is a fraction: give a value in [0, 1]")
        if self.unit in ("ms", "s") and limit <= 0:
            unit = "milliseconds" if self.unit == "ms" else "seconds"
            raise ValueError(f"{self.name} must be > 0 {unit}")
        if self.unit == "count" and (limit < 0 or int(limit) != limit):
            raise ValueError(f"{self.name} must be a whole number >= 0")
        return float(limit)


def format_value(unit: Unit, value: float) -> str:
    if unit == "ms":
        return f"{value:g} ms"
    if unit == "s":
        return f"{value:g} s"
    if unit == "ratio":
        return f"{value:.2%}"
    return f"{value:g}"


CRITERIA: dict[str, Criterion] = {
    c.name: c
    for c in (
        Criterion(
            "p95_ms",
            "P95",
            "lt",
            "ms",
            True,
            "95th percentile latency at the gate step (open model: from the intended start)",
        ),
        Criterion(
            "error_rate",
            "errors",
            "lt",
            "ratio",
            True,
            "share of failed requests at the gate step (open model: dropped arrivals count)",
        ),
        Criterion(
            "payment_pending_rate",
            "payment deferred",
            "le",
            "ratio",
            True,
            "share of requests answered 202 payment_pending (Stripe failed or breaker open);"
            ' set it per route: routes."POST /checkout"',
        ),
        Criterion(
            "db_connection_errors",
            "DB connection errors",
            "le",
            "count",
            False,
            "service DB connection errors over the whole load period",
        ),
        Criterion(
            "cache_hit_rate",
            "cache hit rate",
            "ge",
            "ratio",
            False,
            "cache hits / lookups at the gate step",
        ),
        Criterion(
            "job_completion_rate",
            "job completion",
            "ge",
            "ratio",
            False,
            "background jobs completed / enqueued",
        ),
        # Graceful degradation (seed §5.5), one result per injected fault (faults.jsonl):
        Criterion(
            "fault_detect_s",
            "time to detect",
            "le",
            "s",
            False,
            "fault start to the guarding circuit breaker (Stripe, OSRM, Redis) open",
        ),
        Criterion(
            "fault_error_rate",
            "catalogue/cart errors during the fault",
            "lt",
            "ratio",
            False,
            "share of catalogue and cart requests that failed during each fault",
        ),
        Criterion(
            "fault_p95_ms",
            "catalogue/cart P95 during the fault",
            "lt",
            "ms",
            False,
            "P95 of catalogue and cart requests during each fault",
        ),
        Criterion(
            "fault_order_failure_rate",
            "order failures during the fault",
            "lt",
            "ratio",
            False,
            "checkouts failed (not paid, deferred or declined) from a fault to its recovery",
        ),
        Criterion(
            "fault_recovery_s",
            "time to recover",
            "le",
            "s",
            False,
            "fault end to breakers closed, no deferred payment and errors at the pre-fault rate",
        ),
    )
}


def criterion(name: str) -> Criterion:
    """The registered criterion ``name``; KeyError naming the allowed names otherwise."""
    try:
        return CRITERIA[name]
    except KeyError:
        raise KeyError(f"unknown criterion {name!r} (allowed: {', '.join(CRITERIA)})") from None
