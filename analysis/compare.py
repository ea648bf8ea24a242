"""Regression test of a run against a baseline: latency location, tails and errors.

Per endpoint and overall, on steady-state records, three questions:
- **Errors** — a two-proportion z-test (statsmodels ``proportions_ztest``) on the error
  rates, with a Newcombe interval of the difference (``confint_proportions_2indep``).  A
  run full of fast errors is a regression: it is caught here, and latencies are compared
  on successful requests only, so failing fast can never look like an improvement.
- **Location** — Mann-Whitney U (scipy) decides whether the latency distributions differ;
  the Hodges-Lehmann estimate (median of all pairwise differences current - baseline)
  says by how much, relative to the baseline median; a tolerance band (default +/-5%)
  decides whether that much matters (at millions of records a 0.1% shift is
  "significant").
- **Tails** — P95 and P99 of each run with their 95% intervals; a tail regresses when the
  intervals do not overlap and the relative change is outside the band.
Verdict: regression if any of the three regresses, else improvement if one improves,
else no change.

Hodges-Lehmann is computed without subsampling: latencies are put on a grid of 0.05% of
the baseline median (each pairwise difference moves by at most one grid step) and the
median of the m x n differences is found by bisection over that grid, counting pairs
with sorted arrays (O((m + n) log n) per step, ~25 steps).  The error is below 0.05
percentage points of the baseline median, so a shift inside the tolerance band is not
flagged by sampling noise (a seeded 2,000-record subsample had a standard error of ~2
points).  The p-values are Bonferroni-adjusted over the endpoints and tests, so 20
endpoints do not produce a false regression one night in five.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from analysis.intervals import steady_seconds
from analysis.percentiles import quantiles_with_ci
from analysis.runs import Run
from analysis.steps import Step, assign_steps, build_steps

TOLERANCE = 0.05
#: An error-rate increase smaller than this (absolute, 0.1 percentage point) is noise.
ERROR_TOLERANCE = 0.001
ALPHA = 0.05
MIN_SAMPLES = 50
MWU_SAMPLES = 200_000
#: Below this many pairs Hodges-Lehmann is the plain median of all differences.
HL_EXACT_PAIRS = 4_000_000
#: Grid step of the large-sample Hodges-Lehmann, as a fraction of the baseline median.
HL_GRID = 0.0005
TAILS = (0.95, 0.99)
#: Tests per endpoint that carry a p-value (errors, location) for Bonferroni.
TESTS_PER_ENDPOINT = 2

REGRESSION, IMPROVEMENT, NO_CHANGE, INSUFFICIENT = (
    "regression",
    "improvement",
    "no change",
    "insufficient data",
)


@dataclass
class ErrorComparison:
    """Error rates of both runs, their difference with a 95% interval, the z-test."""

    errors_current: int
    errors_baseline: int
    rate_current: float | None
    rate_baseline: float | None
    diff: float | None  # current - baseline
    diff_ci: tuple[float, float] | None
    p_value: float | None  # Bonferroni-adjusted
    verdict: str


@dataclass
class TailComparison:
    """One percentile (P95, P99) of both runs with their 95% intervals (ms)."""

    p: float
    current_ms: float | None
    current_ci: tuple[float, float] | None
    baseline_ms: float | None
    baseline_ci: tuple[float, float] | None
    relative: float | None
    verdict: str


@dataclass
class EndpointComparison:
    endpoint: str  # "overall" for all endpoints together
    n_current: int
    n_baseline: int
    median_current_ms: float | None
    median_baseline_ms: float | None
    hl_shift_ms: float | None
    relative_shift: float | None
    p_value: float | None  # Bonferroni-adjusted (location test)
    verdict: str  # the worst of location, errors and tails
    location_verdict: str | None = None
    errors: ErrorComparison | None = None
    tails: list[TailComparison] | None = None


@dataclass
class Comparison:
    run_id: str
    baseline_id: str
    tolerance: float
    alpha: float
    loads: list[float]  # load levels compared (common to both runs), empty = all steady state
    overall: EndpointComparison
    endpoints: list[EndpointComparison]
    verdict: str


def hodges_lehmann(current: np.ndarray, baseline: np.ndarray, grid: float | None = None) -> float:
    """Median of all pairwise differences current_i - baseline_j.

    Exact below HL_EXACT_PAIRS pairs; above, exact on a grid of ``grid`` (default 0.05%
    of the baseline median): every value is rounded to the grid, so each difference and
    hence the median moves by at most one grid step.
    """
    c = np.asarray(current, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if c.size * b.size <= HL_EXACT_PAIRS:
        return float(np.median(c[:, None] - b[None, :]))
    step = grid or HL_GRID * max(float(np.median(b)), 1.0)
    uc, wc = np.unique(np.round(c / step).astype(np.int64), return_counts=True)
    ub, wb = np.unique(np.round(b / step).astype(np.int64), return_counts=True)
    below = np.concatenate([[0], np.cumsum(wb)])  # below[i] = # baseline values < ub[i]
    n_b = int(b.size)

    def at_most(d: int) -> int:
        """Pairs with current - baseline <= d, i.e. baseline >= current - d."""
        return int(np.sum(wc * (n_b - below[np.searchsorted(ub, uc - d, side="left")])))

    def kth(k: int) -> int:
        lo, hi = int(uc[0] - ub[-1]), int(uc[-1] - ub[0])
        while lo < hi:
            mid = (lo + hi) // 2
            if at_most(mid) >= k:
                hi = mid
            else:
                lo = mid + 1
        return lo

    total = int(c.size) * n_b
    return (kth((total + 1) // 2) + kth(total // 2 + 1)) / 2 * step


def _subsample(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return x if x.size <= k else rng.choice(x, size=k, replace=False)


def compare_samples(
    endpoint: str,
    cur_us: np.ndarray,
    base_us: np.ndarray,
    tolerance: float = TOLERANCE,
    alpha: float = ALPHA,
    n_tests: int = 1,
    seed: int = 0,
    sec_c: np.ndarray | None = None,
    sec_b: np.ndarray | None = None,
) -> EndpointComparison:
    """Compare two latency samples (µs): location (MWU + Hodges-Lehmann) and tails."""
    n_c, n_b = int(cur_us.size), int(base_us.size)
    if n_c < MIN_SAMPLES or n_b < MIN_SAMPLES:
        return EndpointComparison(
            endpoint, n_c, n_b, None, None, None, None, None, INSUFFICIENT, INSUFFICIENT
        )
    rng = np.random.default_rng(seed)
    c = cur_us.astype(float)
    b = base_us.astype(float)
    p = float(
        stats.mannwhitneyu(
            _subsample(c, MWU_SAMPLES, rng),
            _subsample(b, MWU_SAMPLES, rng),
            alternative="two-sided",
            method="asymptotic",
        ).pvalue
    )
    p_adj = min(1.0, p * n_tests)
    hl = hodges_lehmann(c, b)
    med_b = float(np.median(b))
    rel = hl / med_b if med_b > 0 else 0.0
    location = _classify(p_adj < alpha, rel, tolerance)
    tails = compare_tails(cur_us, base_us, tolerance, sec_c, sec_b)
    return EndpointComparison(
        endpoint,
        n_c,
        n_b,
        float(np.median(c)) / 1000,
        med_b / 1000,
        hl / 1000,
        rel,
        p_adj,
        worst([location, *(t.verdict for t in tails)]),
        location,
        None,
        tails,
    )


def _classify(significant: bool, rel: float, tolerance: float) -> str:
    if significant and rel > tolerance:
        return REGRESSION
    if significant and rel < -tolerance:
        return IMPROVEMENT
    return NO_CHANGE


def worst(verdicts: list[str]) -> str:
    """Regression beats improvement beats no change; insufficient data only if alone."""
    for v in (REGRESSION, IMPROVEMENT, NO_CHANGE):
        if v in verdicts:
            return v
    return INSUFFICIENT


def compare_tails(
    cur_us: np.ndarray,
    base_us: np.ndarray,
    tolerance: float,
    sec_c: np.ndarray | None = None,
    sec_b: np.ndarray | None = None,
) -> list[TailComparison]:
    """P95 and P99 with intervals; a change counts when the intervals do not overlap and
    it is outside the tolerance band (non-overlap of two 95% intervals is conservative).

    ``sec_c``/``sec_b`` (each record's second, see :func:`steady_seconds`) make the
    intervals dependence-aware, as in the run report; without them records are taken as
    independent, which makes tail intervals of a real run too narrow."""
    qc = quantiles_with_ci(cur_us, TAILS, seconds=_seconds(sec_c))
    qb = quantiles_with_ci(base_us, TAILS, seconds=_seconds(sec_b))
    out = []
    for p in TAILS:
        a, b = qc[p], qb[p]
        if not (a.has_interval and b.has_interval):
            out.append(TailComparison(p, a.value_ms, None, b.value_ms, None, None, INSUFFICIENT))
            continue
        rel = a.value_ms / b.value_ms - 1 if b.value_ms > 0 else 0.0
        if a.ci_low_ms > b.ci_high_ms and rel > tolerance:
            verdict = REGRESSION
        elif a.ci_high_ms < b.ci_low_ms and rel < -tolerance:
            verdict = IMPROVEMENT
        else:
            verdict = NO_CHANGE
        out.append(
            TailComparison(
                p,
                a.value_ms,
                (a.ci_low_ms, a.ci_high_ms),
                b.value_ms,
                (b.ci_low_ms, b.ci_high_ms),
                rel,
                verdict,
            )
        )
    return out


def compare_errors(
    err_c: int, n_c: int, err_b: int, n_b: int, alpha: float = ALPHA, n_tests: int = 1
) -> ErrorComparison:
    """Two-proportion z-test on error rates; regression when significantly higher by more
    than ERROR_TOLERANCE (absolute)."""
    if n_c < MIN_SAMPLES or n_b < MIN_SAMPLES:
        return ErrorComparison(err_c, err_b, None, None, None, None, None, INSUFFICIENT)
    rc, rb = err_c / n_c, err_b / n_b
    if err_c + err_b == 0 or err_c + err_b == n_c + n_b:
        p = 1.0  # identical all-success (or all-error) runs: nothing to test
    else:
        p = float(proportions_ztest([err_c, err_b], [n_c, n_b])[1])
    lo, hi = confint_proportions_2indep(err_c, n_c, err_b, n_b, method="newcomb", compare="diff")
    p_adj = min(1.0, p * n_tests)
    diff = rc - rb
    if p_adj < alpha and diff > ERROR_TOLERANCE:
        verdict = REGRESSION
    elif p_adj < alpha and diff < -ERROR_TOLERANCE:
        verdict = IMPROVEMENT
    else:
        verdict = NO_CHANGE
    return ErrorComparison(
        err_c, err_b, rc, rb, diff, (min(float(lo), diff), max(float(hi), diff)), p_adj, verdict
    )


def compare_endpoint(
    endpoint: str,
    lat_c: np.ndarray,
    failed_c: np.ndarray,
    lat_b: np.ndarray,
    failed_b: np.ndarray,
    tolerance: float = TOLERANCE,
    alpha: float = ALPHA,
    n_tests: int = 1,
    seed: int = 0,
    sec_c: np.ndarray | None = None,
    sec_b: np.ndarray | None = None,
) -> EndpointComparison:
    """Errors on all records; latency location and tails on successful records only."""
    ok_c, ok_b = ~failed_c, ~failed_b
    out = compare_samples(
        endpoint,
        lat_c[ok_c],
        lat_b[ok_b],
        tolerance,
        alpha,
        n_tests,
        seed,
        None if sec_c is None else sec_c[ok_c],
        None if sec_b is None else sec_b[ok_b],
    )
    out.errors = compare_errors(
        int(failed_c.sum()), int(lat_c.size), int(failed_b.sum()), int(lat_b.size), alpha, n_tests
    )
    out.n_current, out.n_baseline = int(lat_c.size), int(lat_b.size)
    out.verdict = worst(
        [out.location_verdict or INSUFFICIENT, out.errors.verdict]
        + [t.verdict for t in out.tails or []]
    )
    return out


def aligned_steps(run: Run, baseline: Run) -> tuple[list[Step], list[Step]]:
    """Both runs' steps with the same warm-up cut from each hold of the same name: the
    larger of their two MSER-5 truncations.  Why: pooled over steps, a run that cut more
    of one step weighs the other steps more, which shifts its pooled latency with no
    change in the system."""
    a, b = build_steps(run), build_steps(baseline)
    cut = {s.name: s.truncated_s for s in a}
    for s in b:
        cut[s.name] = max(cut.get(s.name, 0.0), s.truncated_s)

    def align(steps: list[Step]) -> list[Step]:
        out = []
        for s in steps:
            extra = cut[s.name] - s.truncated_s
            if extra > 0:
                s = replace(
                    s,
                    start_us=s.start_us + int(extra * 1e6),
                    truncated_s=cut[s.name],
                    truncation=f"{s.truncation}; {cut[s.name]:g} s to match the other run",
                )
            if s.end_us > s.start_us:
                out.append(s)
        return out

    return align(a), align(b)


def _steady(
    run: Run, loads: set[float] | None, steps: list[Step] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of steady-state records (optionally only at ``loads``) and their step loads."""
    steps = build_steps(run) if steps is None else steps
    step_of = assign_steps(run.events.ts_us, steps)
    load_of = np.array(
        [s.rate if s.rate is not None else s.users for s in steps] + [np.nan], dtype=float
    )
    step_load = load_of[step_of]  # -1 maps to the trailing NaN
    keep = step_of >= 0
    if loads:
        keep &= np.isin(step_load, list(loads))
    return np.flatnonzero(keep), step_load


def _seconds(sec: np.ndarray | None) -> tuple[np.ndarray, int] | None:
    if sec is None or not sec.size:
        return None
    return sec, int(sec.max()) + 1


def _loads(run: Run) -> set[float]:
    return {float(s.rate if s.rate is not None else s.users) for s in build_steps(run)}


def _global_codes(run: Run, names: list[str]) -> np.ndarray:
    """Endpoint codes of ``run`` mapped into the shared ``names`` index (no per-row strings)."""
    remap = np.array(
        [names.index(c) for c in run.events.endpoint.categories] or [0], dtype=np.int32
    )
    return remap[run.events.endpoint.codes]


def _failed(run: Run) -> np.ndarray:
    """Per-record error flag (any error class)."""
    cats = run.events.error_class.categories
    bad = np.array([c not in ("", "none", "ok") for c in cats] or [False])
    return bad[run.events.error_class.codes] if len(run.events) else np.zeros(0, dtype=bool)


def compare_runs(
    run: Run, baseline: Run, tolerance: float = TOLERANCE, alpha: float = ALPHA
) -> Comparison:
    """Compare ``run`` with ``baseline`` at the load levels both ran (all steady state if none)."""
    common = _loads(run) & _loads(baseline)
    steps_c, steps_b = aligned_steps(run, baseline)
    idx_c, _ = _steady(run, common or None, steps_c)
    idx_b, _ = _steady(baseline, common or None, steps_b)
    lat_c, lat_b = run.events.latency_us[idx_c], baseline.events.latency_us[idx_b]
    sec_c = steady_seconds(run.events.ts_us[idx_c])
    sec_b = steady_seconds(baseline.events.ts_us[idx_b])
    bad_c, bad_b = _failed(run)[idx_c], _failed(baseline)[idx_b]
    names = sorted(set(run.events.endpoint.categories) | set(baseline.events.endpoint.categories))
    ep_c = _global_codes(run, names)[idx_c]
    ep_b = _global_codes(baseline, names)[idx_b]
    n_tests = (len(names) + 1) * TESTS_PER_ENDPOINT
    overall = compare_endpoint(
        "overall", lat_c, bad_c, lat_b, bad_b, tolerance, alpha, n_tests, 0, sec_c, sec_b
    )
    per_ep = []
    for i, name in enumerate(names):
        mc, mb = ep_c == i, ep_b == i
        per_ep.append(
            compare_endpoint(
                name,
                lat_c[mc],
                bad_c[mc],
                lat_b[mb],
                bad_b[mb],
                tolerance,
                alpha,
                n_tests,
                i + 1,
                steady_seconds(run.events.ts_us[idx_c][mc]),
                steady_seconds(baseline.events.ts_us[idx_b][mb]),
            )
        )
    verdicts = {e.verdict for e in [overall, *per_ep]}
    if REGRESSION in verdicts:
        verdict = REGRESSION
    elif overall.verdict == INSUFFICIENT:
        verdict = INSUFFICIENT
    elif IMPROVEMENT in verdicts:
        verdict = IMPROVEMENT
    else:
        verdict = NO_CHANGE
    return Comparison(
        run.run_id, baseline.run_id, tolerance, alpha, sorted(common), overall, per_ep, verdict
    )
