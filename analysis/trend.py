"""A trend across runs (nights): gate P95, error rate, throughput, binding constraint.

Each run is analysed as ``loadgate report`` would (``analysis.analyze``) and reduced to
one :class:`TrendPoint`: the values of its gate step with their 95 % intervals, and
the binding headroom constraint.  Runs are ordered by the manifest's start time.

Only runs whose verdict is a measured, valid decision (PASS, FAIL, NO GATE) are points
of the trend line: an INVALID run's numbers describe the harness, an INCONCLUSIVE or
PROJECTED one's do not decide, so drawing them on the line would show a trend the data
cannot support.  They are kept in the trend, labelled with their verdict.

Regressions are decided by :func:`analysis.compare.compare_runs` — the same test as
``loadgate compare`` — between consecutive points of the line (each run against the
previous run on the line), never by a fixed percentage here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from analysis.analyze import AnalysisResult, analyze
from analysis.compare import REGRESSION, compare_runs
from analysis.runs import Run
from analysis.steps import StepStats
from runformat.manifest import RunFormatError, iso_to_us, read_manifest
from runformat.verdicts import Verdict

#: Verdicts that put a run on the trend line (measured at the gate load, run valid).
ON_LINE = (Verdict.PASS, Verdict.FAIL, Verdict.NO_GATE)
SCHEMA = "loadgate.trend/1"


class TrendError(ValueError):
    """The runs given cannot make one trend (the CLI prints it as one ``error:`` line)."""


@dataclass
class TrendPoint:
    """One run of the trend; values are those of its gate step (measured)."""

    run_id: str
    run_dir: str
    started_at: str
    verdict: str
    on_line: bool
    note: str  # why the run is not on the line, or what its step is
    step: str | None = None
    load: float | None = None
    load_unit: str = "users"
    p95_ms: float | None = None
    p95_ci: tuple[float, float] | None = None
    p95_limit_ms: float | None = None
    error_rate: float | None = None
    error_rate_ci: tuple[float, float] | None = None
    throughput_rps: float | None = None
    throughput_ci: tuple[float, float] | None = None
    binding: str | None = None
    binding_load: float | None = None
    binding_ci: tuple[float, float] | None = None
    binding_basis: str | None = None
    baseline_id: str | None = None  # the previous run on the line, compared with
    comparison: str | None = None  # compare_runs' verdict against it
    regression: bool = False


@dataclass
class Trend:
    points: list[TrendPoint]
    phase: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[TrendPoint]:
        return [p for p in self.points if p.regression]


def order_runs(paths: Iterable[Path], last: int | None = None) -> list[Path]:
    """Run directories sorted by their manifest's start time (oldest first), the last
    ``last`` of them.  Raises TrendError for a directory without a readable manifest."""
    keyed = []
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            raise TrendError(f"{path}: no such run directory")
        try:
            manifest = read_manifest(path)
            started = iso_to_us(manifest.started_at)
        except (RunFormatError, ValueError) as exc:
            raise TrendError(
                f"{exc}: pass run directories written by 'loadgate run' (docs/run-directory.md)"
            ) from None
        keyed.append((started, path.name, path, manifest.phase))
    if not keyed:
        raise TrendError("no run directories given: pass RUNS... (e.g. runs/*)")
    phases = sorted({str(k[3]) for k in keyed})
    if len(phases) > 1:
        raise TrendError(
            f"runs of different phases ({', '.join(phases)}): a trend compares one phase's "
            "gate over time; pass the runs of one phase"
        )
    if last is not None and last < 1:
        raise TrendError(f"--last {last}: give at least 1")
    keyed.sort(key=lambda k: (k[0], k[1]))
    out = [k[2] for k in keyed]
    return out[-last:] if last else out


def reference_step(result: AnalysisResult) -> StepStats | None:
    """The gate step; for a run without a gate (NO GATE) its highest-load step."""
    measured = [s for s in result.steps if s.n]
    if result.gate.step is not None:
        return next((s for s in measured if s.step.name == result.gate.step), None)
    if result.verdict == Verdict.NO_GATE and measured:
        return max(measured, key=lambda s: s.load)
    return None


def point_of(result: AnalysisResult, run: Run) -> TrendPoint:
    """The trend values of one analysed run."""
    verdict = Verdict(result.verdict)
    st = reference_step(result)
    on_line = verdict in ON_LINE and st is not None
    if not on_line:
        reasons = "; ".join(result.gate.reasons) or verdict.meaning
        note = f"{verdict.value}: not on the trend line ({reasons})"
    elif result.gate.step is None:
        note = f"no gate: values of the highest step {st.step.name}"
    else:
        note = f"gate step {st.step.name}"
    point = TrendPoint(
        run_id=result.run_id,
        run_dir=str(run.path),
        started_at=str(result.manifest.get("started_at")),
        verdict=verdict.value,
        on_line=on_line,
        note=note,
        load_unit=result.gate.load_unit,
        p95_limit_ms=run.gate_spec.criteria.get("p95_ms"),
    )
    if st is not None:
        q = st.latency.p(0.95)
        point.step, point.load = st.step.name, st.load
        point.p95_ms = q.value_ms
        point.p95_ci = (q.ci_low_ms, q.ci_high_ms) if q.has_interval else None
        point.error_rate, point.error_rate_ci = (
            st.error_rate,
            _hull(st.error_rate, st.error_rate_ci),
        )
        point.throughput_rps = st.throughput_rps
        point.throughput_ci = _hull(st.throughput_rps, st.throughput_ci)
    binding = result.headroom.binding
    if binding is not None:
        point.binding, point.binding_basis = binding.name, binding.basis
        point.binding_load, point.binding_ci = binding.load, binding.ci
    return point


def _hull(point: float, ci: tuple[float, float] | None) -> tuple[float, float] | None:
    """An interval widened to hold its point (as the reports print them)."""
    return None if ci is None else (min(ci[0], point), max(ci[1], point))


def build_trend(paths: list[Path], load: Callable[[Path], Run]) -> Trend:
    """Analyse ``paths`` (already ordered) and mark regressions between consecutive
    points of the line.  ``load`` reads one run directory (the CLI passes the checked
    loader of ``reports``, whose errors are one line).  Holds at most two runs' records
    in memory at a time."""
    points: list[TrendPoint] = []
    previous: Run | None = None
    phase = None
    for path in paths:
        run = load(path)
        phase = run.phase
        point = point_of(analyze(run), run)
        if point.on_line:
            if previous is not None:
                comparison = compare_runs(run, previous)
                point.baseline_id = previous.run_id
                point.comparison = comparison.verdict
                point.regression = comparison.verdict == REGRESSION
            previous = run
        points.append(point)
    notes = []
    if sum(p.on_line for p in points) < 2:
        notes.append(
            "fewer than two runs on the trend line: no regression can be decided "
            "(runs that are INVALID, INCONCLUSIVE or PROJECTED are not compared)"
        )
    return Trend(points, phase, notes)
