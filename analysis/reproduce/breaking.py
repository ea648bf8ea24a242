"""Where one run breaks: the first steady-state step at which a gate criterion fails.

Each step is judged like a gate step (``analysis.gates.evaluate_step``): a criterion
*fails* only when its whole 95 % interval is on the wrong side of the limit, or, for a
count such as DB connection errors, when the exact count exceeds it. A step whose value
cannot decide (no interval, an interval straddling the limit) neither breaks nor holds.

The breaking point is a bracket, not a number: a stepped ramp only shows that the binding
criterion still passed at an earlier step and failed at this one, so the interval is
(last load where it passed, breaking load]. The binding constraint is the failed
criterion exceeded the most relative to its limit (a count over a zero limit counts as
infinitely exceeded). ``held_up_to`` is the last load where *every* criterion passed.
Validity is judged per step too: the first step where a
deciding validity check failed (generator lag, generator CPU, Little's law, window
coverage) is where the *machine* saturated, and nothing at or above it speaks for the
architecture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from analysis import gates
from analysis.analyze import AnalysisResult
from analysis.counters import counter_over_period
from analysis.reproduce.metrics import Metric
from analysis.runs import Run
from analysis.steps import StepStats
from runformat.criteria import CRITERIA
from runformat.schemas import DB_CONNECTION_ERRORS


@dataclass
class Judged:
    """One criterion at one step."""

    description: str
    status: str  # analysis.gates: pass / fail / inconclusive / insufficient data
    value: float | None
    ci: tuple[float, float] | None
    excess: float  # value / limit for a failure (inf over a zero limit), else 0


@dataclass
class StepResult:
    """One steady-state step of one side: criteria, validity and explaining metrics."""

    name: str
    load: float
    requests: int
    criteria: list[Judged]
    invalid: list[str]  # deciding validity checks that failed here
    host_cpu_percent: float | None
    p95_ms: float | None
    error_rate: float
    metrics: dict[str, float | None] = field(default_factory=dict)

    @property
    def failed(self) -> list[Judged]:
        return sorted((c for c in self.criteria if c.status == gates.FAIL), key=lambda c: -c.excess)

    @property
    def held(self) -> bool:
        """Every criterion decided and passed."""
        return all(c.status == gates.PASS for c in self.criteria)

    @property
    def valid(self) -> bool:
        return not self.invalid


@dataclass
class BreakingPoint:
    """Where a side broke (``step`` None: it held up to ``held_up_to``)."""

    step: str | None
    load: float | None
    interval: tuple[float, float] | None  # (last held load, breaking load]
    binding: str | None
    failed: list[str]
    held_up_to: float | None  # highest load of a step that held every criterion
    saturated_at: float | None  # load of the first step the machine saturated (invalid)

    @property
    def broke(self) -> bool:
        return self.step is not None

    @property
    def credible(self) -> bool:
        """Broke before the machine saturated (or the machine never did)."""
        return self.broke and (self.saturated_at is None or self.load < self.saturated_at)  # type: ignore[operator]


def _excess(value: float | None, limit: float) -> float:
    if value is None:
        return 0.0
    if limit == 0:
        return math.inf if value > 0 else 0.0
    return value / limit if value >= limit else limit / max(value, 1e-12)


def _judged(c: gates.CriterionResult, limit: float) -> Judged:
    excess = _excess(c.value, limit) if c.status == gates.FAIL else 0.0
    return Judged(c.description, c.status, c.value, c.ci, excess)


def _db_errors(run: Run, start_us: int, st: StepStats, limit: float) -> Judged:
    """DB connection errors from the end of the previous steady window (the ramp into
    this level included) to the end of this one: an exact count, tiled so that the
    levels' counts add up to the load's."""
    spec = CRITERIA["db_connection_errors"]
    value, _how = counter_over_period(
        run.samples, "service", DB_CONNECTION_ERRORS, start_us, st.step.end_us, tiled=True
    )
    if value is None:
        return Judged(spec.describe(limit, None), gates.INSUFFICIENT, None, None, 0.0)
    ok = spec.ok(value, limit)
    status = gates.PASS if ok else gates.FAIL
    return Judged(
        spec.describe(limit, None), status, value, None, 0 if ok else _excess(value, limit)
    )


def judge_steps(run: Run, result: AnalysisResult, metrics: tuple[Metric, ...]) -> list[StepResult]:
    """Every step with records, in load order, judged by the run's gate criteria."""
    out: list[StepResult] = []
    previous_end = run.start_us
    limits = {n: lim for n, lim in run.gate_spec.criteria.items()}
    by_step: dict[str | None, list] = {}
    for c in result.checks:
        by_step.setdefault(c.step, []).append(c)
    for st in sorted((s for s in result.steps if s.n), key=lambda s: s.load):
        judged = []
        for c in gates.evaluate_step(run, result.steps, result.usl, st):
            limit = (
                run.gate_spec.routes.get(c.route or "", {}).get(c.name)
                if c.route
                else limits.get(c.name)
            )
            judged.append(_judged(c, float(limit or 0.0)))
        level_start, previous_end = previous_end, st.step.end_us
        if "db_connection_errors" in limits:
            judged.append(_db_errors(run, level_start, st, limits["db_connection_errors"]))
        checks = by_step.get(st.step.name, []) + by_step.get(None, [])
        invalid = [f"{c.name}: {c.detail}" for c in checks if c.decides and c.ok is False]
        host = next((c.observed for c in checks if c.name == "host_cpu"), None)
        q = st.latency.p(0.95)
        out.append(
            StepResult(
                name=st.step.name,
                load=st.load,
                requests=st.n,
                criteria=judged,
                invalid=invalid,
                host_cpu_percent=host,
                p95_ms=q.value_ms if q.ok else None,
                error_rate=st.error_rate,
                metrics={m.key: m.at(run, st, level_start) for m in metrics},
            )
        )
    return out


def breaking_point(steps: list[StepResult]) -> BreakingPoint:
    """The first step where a criterion failed, bracketed from below by the last earlier
    step where that (binding) criterion was decided and passed."""
    saturated = next((s.load for s in steps if not s.valid), None)
    held = [s.load for s in steps if s.held]
    for i, s in enumerate(steps):
        failed = s.failed
        if not failed:
            continue
        binding = failed[0].description
        passed = [
            e.load
            for e in steps[:i]
            if any(c.description == binding and c.status == gates.PASS for c in e.criteria)
        ]
        return BreakingPoint(
            step=s.name,
            load=s.load,
            interval=(max(passed, default=0.0), s.load),
            binding=binding,
            failed=[c.description for c in failed],
            held_up_to=max((h for h in held if h < s.load), default=None),
            saturated_at=saturated,
        )
    return BreakingPoint(None, None, None, None, [], max(held, default=None), saturated)
