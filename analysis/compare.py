"""Regression test of a run against a baseline (Kayenta-style Mann-Whitney classifier).

Per endpoint and overall, on steady-state latencies:
- Mann-Whitney U (scipy) decides whether the distributions differ at all;
- the Hodges-Lehmann estimate (median of all pairwise differences current - baseline)
  says by how much, relative to the baseline median;
- a tolerance band (default +/-5%) decides whether that much matters.  At millions of
  records a 0.1% shift is "significant"; the band is what keeps such noise from failing CI.
Verdict: regression / improvement when significant *and* outside the band, else no change.

Hodges-Lehmann is hand-written (scipy has none): the exact estimator over m x n pairs is
O(mn), so both samples are subsampled (seeded) to at most ``HL_SAMPLES`` records.  The
p-values are Bonferroni-adjusted over the endpoints tested, so 20 endpoints do not
produce a false regression one night in five.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from analysis.runs import Run
from analysis.steps import assign_steps, build_steps

TOLERANCE = 0.05
ALPHA = 0.05
MIN_SAMPLES = 50
MWU_SAMPLES = 200_000
HL_SAMPLES = 2_000

REGRESSION, IMPROVEMENT, NO_CHANGE, INSUFFICIENT = (
    "regression",
    "improvement",
    "no change",
    "insufficient data",
)


@dataclass
class EndpointComparison:
    endpoint: str  # "overall" for all endpoints together
    n_current: int
    n_baseline: int
    median_current_ms: float | None
    median_baseline_ms: float | None
    hl_shift_ms: float | None
    relative_shift: float | None
    p_value: float | None  # Bonferroni-adjusted
    verdict: str


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


def hodges_lehmann(current: np.ndarray, baseline: np.ndarray) -> float:
    """Median of all pairwise differences current_i - baseline_j."""
    return float(np.median(current[:, None] - baseline[None, :]))


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
) -> EndpointComparison:
    """Compare two latency samples (µs) and classify the difference."""
    n_c, n_b = int(cur_us.size), int(base_us.size)
    if n_c < MIN_SAMPLES or n_b < MIN_SAMPLES:
        return EndpointComparison(endpoint, n_c, n_b, None, None, None, None, None, INSUFFICIENT)
    rng = np.random.default_rng(seed)
    c = _subsample(cur_us, MWU_SAMPLES, rng).astype(float)
    b = _subsample(base_us, MWU_SAMPLES, rng).astype(float)
    p = float(stats.mannwhitneyu(c, b, alternative="two-sided", method="asymptotic").pvalue)
    p_adj = min(1.0, p * n_tests)
    hl = hodges_lehmann(_subsample(c, HL_SAMPLES, rng), _subsample(b, HL_SAMPLES, rng))
    med_b = float(np.median(b))
    rel = hl / med_b if med_b > 0 else 0.0
    if p_adj < alpha and rel > tolerance:
        verdict = REGRESSION
    elif p_adj < alpha and rel < -tolerance:
        verdict = IMPROVEMENT
    else:
        verdict = NO_CHANGE
    return EndpointComparison(
        endpoint, n_c, n_b, float(np.median(c)) / 1000, med_b / 1000, hl / 1000, rel, p_adj, verdict
    )


def _steady(run: Run, loads: set[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of steady-state records (optionally only at ``loads``) and their step loads."""
    steps = build_steps(run)
    step_of = assign_steps(run.events.ts_us, steps)
    load_of = np.array(
        [s.rate if s.rate is not None else s.users for s in steps] + [np.nan], dtype=float
    )
    step_load = load_of[step_of]  # -1 maps to the trailing NaN
    keep = step_of >= 0
    if loads:
        keep &= np.isin(step_load, list(loads))
    return np.flatnonzero(keep), step_load


def _loads(run: Run) -> set[float]:
    return {float(s.rate if s.rate is not None else s.users) for s in build_steps(run)}


def _global_codes(run: Run, names: list[str]) -> np.ndarray:
    """Endpoint codes of ``run`` mapped into the shared ``names`` index (no per-row strings)."""
    remap = np.array(
        [names.index(c) for c in run.events.endpoint.categories] or [0], dtype=np.int32
    )
    return remap[run.events.endpoint.codes]


def compare_runs(
    run: Run, baseline: Run, tolerance: float = TOLERANCE, alpha: float = ALPHA
) -> Comparison:
    """Compare ``run`` with ``baseline`` at the load levels both ran (all steady state if none)."""
    common = _loads(run) & _loads(baseline)
    idx_c, _ = _steady(run, common or None)
    idx_b, _ = _steady(baseline, common or None)
    lat_c, lat_b = run.events.latency_us[idx_c], baseline.events.latency_us[idx_b]
    names = sorted(set(run.events.endpoint.categories) | set(baseline.events.endpoint.categories))
    ep_c = _global_codes(run, names)[idx_c]
    ep_b = _global_codes(baseline, names)[idx_b]
    n_tests = len(names) + 1
    overall = compare_samples("overall", lat_c, lat_b, tolerance, alpha, n_tests)
    per_ep = [
        compare_samples(
            name, lat_c[ep_c == i], lat_b[ep_b == i], tolerance, alpha, n_tests, seed=i + 1
        )
        for i, name in enumerate(names)
    ]
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
