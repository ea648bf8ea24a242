"""Dependence-aware intervals: coverage on autocorrelated streams, honesty when data are few.

Every stream is generated here with a fixed seed: a slow latent state per second (AR(1)
or a two-state regime switch) shifts the log-latency of every request in that second,
plus independent per-request noise.  The true P95 is the quantile of the stationary
marginal, known in closed form (AR(1)) or by root finding (regimes).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from analysis.intervals import (
    MIN_BATCHES,
    autocorrelation_time,
    mean_rate_interval,
    per_second,
    ratio_interval,
    second_index,
)
from analysis.percentiles import proportion_ci, quantiles_with_ci

MU = np.log(800_000.0)  # 800 ms median, µs
SE = 0.5  # per-request log-latency noise


def _records(rng, state: np.ndarray, rps: float) -> tuple[np.ndarray, np.ndarray]:
    """Poisson arrivals per second; log-latency = MU + state[second] + noise."""
    n_s = rng.poisson(rps, state.size)
    sec = np.repeat(np.arange(state.size), n_s)
    ts = sec * 1_000_000 + rng.integers(0, 1_000_000, sec.size)
    lat = np.exp(MU + state[sec] + rng.normal(0, SE, sec.size)).astype(np.int64)
    return ts, lat


def _ar1(rng, seconds: int, phi: float, sd: float) -> np.ndarray:
    x = np.empty(seconds)
    x[0] = rng.normal(0, sd)
    shocks = rng.normal(0, sd * np.sqrt(1 - phi**2), seconds)
    for s in range(1, seconds):
        x[s] = phi * x[s - 1] + shocks[s]
    return x


def _regimes(rng, seconds: int, high: float, p_switch: float) -> np.ndarray:
    """Two latency regimes (0 and ``high`` in log space), equally likely, sticky."""
    flips = rng.random(seconds) < p_switch
    first = rng.random() < 0.5
    return high * ((np.cumsum(flips) + first) % 2)


def _p95(ts, lat, seconds):
    return quantiles_with_ci(lat, (0.95,), seconds=second_index(ts, 0, seconds * 1_000_000))[0.95]


def _coverage(streams, true_ms, seconds):
    """Coverage of the true P95 by reported dependence-aware intervals, share reported,
    coverage by the order-statistic interval, and how often an interval covers the
    next replication's point value (what a reader checks by running again)."""
    hit = reported = hit_iid = hit_next = 0
    qs = [_p95(ts, lat, seconds) for ts, lat in streams]
    iids = [quantiles_with_ci(lat, (0.95,))[0.95] for _, lat in streams]  # same points
    for q, iid, nxt in zip(qs, iids, iids[1:] + iids[:1], strict=True):
        hit_iid += iid.ci_low_ms <= true_ms <= iid.ci_high_ms
        if q.has_interval:
            reported += 1
            hit += q.ci_low_ms <= true_ms <= q.ci_high_ms
            hit_next += q.ci_low_ms <= nxt.value_ms <= q.ci_high_ms
    n = len(streams)
    return hit / max(reported, 1), reported / n, hit_iid / n, hit_next / max(reported, 1)


def test_ar1_latency_coverage():
    """AR(1) per-second state (memory ~6 s), 2 min steady state, 200 replications.

    The 95 % interval must cover the true P95 in >= 90 % of the replications where it is
    reported (binomial SE ~1.5 % at 200), and be reported in most of them; the
    order-statistic interval (records taken as independent) covers it far less often.
    An exact 95 % interval covers an independent rerun's point value ~83 % of the time
    (the rerun has its own error), so >= 80 % is asked of that.
    """
    rng = np.random.default_rng(20261127)
    seconds, phi, sd = 120, 0.7, 0.25
    true_ms = np.exp(MU + stats.norm.ppf(0.95) * np.hypot(sd, SE)) / 1000
    streams = [_records(rng, _ar1(rng, seconds, phi, sd), 300) for _ in range(200)]
    coverage, reported, iid, rerun = _coverage(streams, true_ms, seconds)
    assert coverage >= 0.90, coverage
    assert reported >= 0.6, reported
    assert iid < 0.5, iid
    assert rerun >= 0.80, rerun


def test_regime_switching_coverage():
    """Sticky regimes (mean stay 10 s) of +0.4 in log latency: a slow, non-Gaussian state."""
    rng = np.random.default_rng(7)
    seconds, high = 180, 0.4

    def cdf(x):
        z = np.log(x * 1000) - MU
        return 0.5 * stats.norm.cdf(z, scale=SE) + 0.5 * stats.norm.cdf(z - high, scale=SE)

    true_ms = optimize.brentq(lambda x: cdf(x) - 0.95, 100, 100_000)
    streams = [_records(rng, _regimes(rng, seconds, high, 0.1), 250) for _ in range(200)]
    coverage, reported, iid, rerun = _coverage(streams, true_ms, seconds)
    assert coverage >= 0.90, coverage
    assert reported >= 0.6, reported
    assert iid < 0.6, iid
    assert rerun >= 0.80, rerun


def test_independent_records_keep_a_sensible_width():
    """No dependence: the interval still covers at the nominal rate and stays within
    1.6x the exact order-statistic width (it is never narrower: that is its floor)."""
    rng = np.random.default_rng(3)
    seconds = 60
    true_ms = np.exp(MU + stats.norm.ppf(0.95) * SE) / 1000
    ratios, hits = [], 0
    for _ in range(150):
        ts, lat = _records(rng, np.zeros(seconds), 300)
        q = _p95(ts, lat, seconds)
        iid = quantiles_with_ci(lat, (0.95,))[0.95]
        assert q.has_interval, q.reason
        assert q.ci_low_ms <= iid.ci_low_ms and q.ci_high_ms >= iid.ci_high_ms
        ratios.append((q.ci_high_ms - q.ci_low_ms) / (iid.ci_high_ms - iid.ci_low_ms))
        hits += q.ci_low_ms <= true_ms <= q.ci_high_ms
    assert np.median(ratios) <= 1.6, np.median(ratios)
    assert hits / 150 >= 0.92


def test_short_strongly_dependent_window_is_insufficient_not_narrow():
    """A 30 s hold (25 s after warm-up) whose latency remembers ~40 s: no honest interval
    exists, so nearly every replication says 'insufficient data' with the reason."""
    rng = np.random.default_rng(11)
    seconds = 25
    results = [_p95(*_records(rng, _ar1(rng, seconds, 0.95, 0.3), 400), seconds) for _ in range(60)]
    insufficient = [q for q in results if not q.has_interval]
    assert len(insufficient) >= 0.9 * len(results)
    assert all(q.ok and q.value_ms > 0 for q in insufficient)  # the point value stays
    assert all("effective sample too small" in q.reason for q in insufficient)


def test_bursty_errors_widen_the_interval_beyond_binomial():
    """Errors in bursts (5 % of requests for ~8 s at a time, none otherwise) carry less
    information than the same number of independent errors."""
    rng = np.random.default_rng(5)
    seconds, rps = 120, 300
    burst = _regimes(rng, seconds, 1.0, 0.12).astype(bool)
    n_s = rng.poisson(rps, seconds)
    errors = rng.binomial(n_s, np.where(burst, 0.05, 0.0))
    ri = ratio_interval(errors, n_s)
    wilson = proportion_ci(int(errors.sum()), int(n_s.sum()))
    assert ri.ok, ri.reason
    assert ri.design_effect > 3
    assert (ri.high - ri.low) > 2 * (wilson[1] - wilson[0])
    assert ri.low <= errors.sum() / n_s.sum() <= ri.high


def test_independent_errors_match_wilson():
    rng = np.random.default_rng(6)
    n_s = rng.poisson(300, 120)
    errors = rng.binomial(n_s, 0.01)
    ri = ratio_interval(errors, n_s)
    wilson = proportion_ci(int(errors.sum()), int(n_s.sum()))
    assert ri.ok and ri.design_effect < 1.5
    assert (ri.high - ri.low) == pytest.approx(wilson[1] - wilson[0], rel=0.35)


def test_no_errors_gives_an_upper_bound():
    ri = ratio_interval(np.zeros(60), np.full(60, 200.0))
    assert ri.ok and ri.low == 0.0 and 0 < ri.high < 0.001


def test_autocorrelation_time_orders_memory():
    rng = np.random.default_rng(8)
    white = rng.normal(size=600)
    slow = _ar1(rng, 600, 0.9, 1.0)
    assert autocorrelation_time(white) < 1.5
    assert 12 < autocorrelation_time(slow) < 40  # true tau = 19
    assert autocorrelation_time(-np.cumsum(np.ones(5)) * 0) == 1.0  # constant series


def test_throughput_interval_is_never_zero_width_and_widens_with_drift():
    rng = np.random.default_rng(9)
    steady = rng.poisson(300, 120).astype(float)
    drifting = steady + np.linspace(-60, 60, 120)
    _, lo, hi = mean_rate_interval(steady)
    _, dlo, dhi = mean_rate_interval(drifting)
    assert lo < 300 < hi and hi - lo < 10
    assert dhi - dlo > hi - lo
    _, slo, shi = mean_rate_interval(steady[:5])  # too short for MIN_BATCHES: wide, not zero
    assert shi - slo > 0


def test_second_index_folds_a_stub_second():
    sec, n = second_index(np.array([0, 999_999, 1_000_000, 2_300_000]), 0, 2_300_000)
    assert n == 2 and sec.tolist() == [0, 0, 1, 1]
    assert per_second(sec, n).tolist() == [2.0, 2.0]


def test_deterministic():
    rng = np.random.default_rng(10)
    ts, lat = _records(rng, _ar1(rng, 90, 0.5, 0.2), 200)
    assert _p95(ts, lat, 90) == _p95(ts, lat, 90)
    assert MIN_BATCHES >= 3


def test_repeatability_table_from_synthetic_runs(tmp_path):
    """bench_repeatability's table: one row per run dir, each interval's coverage of the
    other runs' point values, the spread, and whether the verdict flipped."""
    from benchmarks.bench_repeatability import covers, read_row, table
    from tests.synthetic import SyntheticSpec, write_run

    dirs = [
        write_run(tmp_path / f"run-{seed}", SyntheticSpec(levels=(40, 80, 100), seed=seed))
        for seed in (1, 2, 3)
    ]
    rows = [read_row(d) for d in dirs]
    out = table(rows)
    lines = out.splitlines()
    assert lines[0].startswith("| run | gate P95")
    body = [line for line in lines if line.startswith("| run-")]
    assert [line.split("|")[1].strip() for line in body] == ["run-1", "run-2", "run-3"]
    p95s = [r.p95_ms for r in rows]
    for r, line in zip(rows, body, strict=True):
        assert r.p95_ms is not None and r.verdict in line
        n = covers(r.p95_ci, p95s)
        assert n is not None and 1 <= n <= 3  # its own point at least
        assert f"| {n} of 3 |" in line
    assert "P95 spread:" in out and "verdict flips between PASS and FAIL: no" in out
    assert covers(None, p95s) is None and covers((0.0, 1.0), [0.5, 2.0, None]) == 1


def test_gate_p95_without_interval_decides_nothing(base_run_dir):
    """A gate step whose P95 has a point but no interval (window too short for its
    memory) gives 'insufficient data' for the P95 criterion, never pass or fail, and the
    reports print the point with the reason instead of an interval."""
    import dataclasses

    from analysis import gates, load_run, saturation, step_stats, steps
    from analysis.percentiles import QuantileEstimate
    from reports import markdown

    run = load_run(base_run_dir)
    stats_ = step_stats.compute_step_stats(run, steps.build_steps(run))
    top = stats_[-1]
    old = top.latency.p(0.95)
    top.latency.percentiles[0.95] = dataclasses.replace(
        old, ci_low_ms=None, ci_high_ms=None, reason="insufficient data (effective sample...)"
    )
    assert top.latency.p(0.95).ok and not top.latency.p(0.95).has_interval
    result = gates.evaluate(run, stats_, saturation.fit_usl(stats_, run.model))
    p95 = next(c for c in result.criteria if c.name == "p95_ms")
    assert p95.status == gates.INSUFFICIENT and "effective sample" in p95.detail
    assert result.verdict != "PASS"
    assert "no interval" in markdown._q(top.latency.p(0.95))
    assert isinstance(old, QuantileEstimate) and old.has_interval
