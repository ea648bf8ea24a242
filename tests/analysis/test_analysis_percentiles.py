"""Percentiles from raw records: exactness, interval coverage, insufficient data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.percentiles import ci_ranks, min_samples, quantiles_with_ci
from analysis.steps import build_steps


def test_point_estimate_is_exact_sample_quantile():
    x = np.random.default_rng(1).lognormal(11, 0.7, 200_000).astype(np.int64)
    q = quantiles_with_ci(x)
    for p in (0.5, 0.9, 0.95, 0.99):
        exact = np.quantile(x, p, method="inverted_cdf") / 1000
        assert q[p].value_ms == pytest.approx(exact, rel=0, abs=1e-9)


def test_within_half_percent_of_true_lognormal_quantile():
    # n = 2M: the relative standard error of the P99 of a lognormal(sigma=0.5) is ~0.13%,
    # so 0.5% is ~4 standard errors (and the seed is fixed).
    mu, sigma = np.log(150_000), 0.5
    x = np.random.default_rng(2).lognormal(mu, sigma, 2_000_000).astype(np.int64)
    q = quantiles_with_ci(x)
    for p in (0.95, 0.99):
        true_ms = stats.lognorm(s=sigma, scale=np.exp(mu)).ppf(p) / 1000
        assert q[p].value_ms == pytest.approx(true_ms, rel=0.005)


def test_pipeline_percentiles_match_generating_sample(base_run_dir, base_result):
    """Step P95/P99 equal the exact quantile of the records written in the step window."""
    from analysis import load_run

    ev = pd.read_parquet(base_run_dir / "events", columns=["ts_us", "latency_us"])
    steps = build_steps(load_run(base_run_dir))
    for step, st in zip(steps, base_result.steps, strict=True):
        win = ev[(ev.ts_us >= step.start_us) & (ev.ts_us < step.end_us)].latency_us.to_numpy()
        assert st.n == win.size
        for p in (0.95, 0.99):
            if st.latency.p(p).ok:
                exact = np.quantile(win, p, method="inverted_cdf") / 1000
                assert st.latency.p(p).value_ms == pytest.approx(exact, rel=0.005)


def test_interval_matches_scipy_quantile_test():
    x = np.random.default_rng(3).lognormal(10, 0.5, 1000).astype(np.int64)
    ours = quantiles_with_ci(x)[0.95]
    ref = stats.quantile_test(x, q=np.median(x), p=0.95).confidence_interval(0.95)
    assert (ours.ci_low_ms, ours.ci_high_ms) == (ref.low / 1000, ref.high / 1000)


@pytest.mark.parametrize("p", [0.95, 0.99])
def test_interval_coverage_over_repeated_draws(p):
    """Order-statistic intervals cover the true quantile at >= 95%.

    400 draws: the binomial standard error of an observed 95% coverage is 1.1%, so a
    floor of 91.5% is ~3 SE below nominal; these intervals are conservative (true coverage
    95-97%), so a ceiling of 99.5% catches intervals that are uselessly wide.
    """
    rng = np.random.default_rng(4)
    mu, sigma, n, draws = np.log(100_000), 0.6, 800, 400
    true = stats.lognorm(s=sigma, scale=np.exp(mu)).ppf(p) / 1000
    hits = 0
    for _ in range(draws):
        q = quantiles_with_ci(rng.lognormal(mu, sigma, n))[p]
        hits += q.ci_low_ms <= true <= q.ci_high_ms
    coverage = hits / draws
    assert 0.915 <= coverage <= 0.995, coverage


def test_insufficient_data_thresholds():
    assert min_samples(0.95) == 110 and min_samples(0.99) == 555
    rng = np.random.default_rng(5)
    assert not quantiles_with_ci(rng.lognormal(10, 1, 109))[0.95].ok
    assert "insufficient data" in quantiles_with_ci(rng.lognormal(10, 1, 109))[0.95].reason
    assert quantiles_with_ci(rng.lognormal(10, 1, 110))[0.95].ok
    assert not quantiles_with_ci(rng.lognormal(10, 1, 554))[0.99].ok
    assert quantiles_with_ci(rng.lognormal(10, 1, 555))[0.99].ok
    assert not quantiles_with_ci(np.array([], dtype=np.int64))[0.5].ok


def test_ci_ranks_bracket_the_point():
    lo, hi = ci_ranks(10_000, 0.99)
    assert lo < 9900 < hi


def test_time_aware_interval_contains_the_independent_one_and_reports_its_sample():
    """With each record's second, the interval accounts for dependence: never narrower
    than the order-statistic one, and it says how many independent records it is worth."""
    from analysis.intervals import second_index

    rng = np.random.default_rng(6)
    seconds = 120
    state = np.repeat(rng.normal(0, 0.3, seconds // 2), 2)  # 2 s plateaus
    n_s = rng.poisson(300, seconds)
    sec = np.repeat(np.arange(seconds), n_s)
    lat = np.exp(np.log(500_000) + state[sec] + rng.normal(0, 0.5, sec.size)).astype(np.int64)
    ts = sec * 1_000_000 + rng.integers(0, 1_000_000, sec.size)
    dep = quantiles_with_ci(lat, seconds=second_index(ts, 0, seconds * 1_000_000))[0.95]
    iid = quantiles_with_ci(lat)[0.95]
    assert dep.value_ms == iid.value_ms
    assert iid.n_eff == iid.n and iid.design_effect == 1.0
    assert dep.has_interval, dep.reason
    assert dep.ci_low_ms <= iid.ci_low_ms and dep.ci_high_ms >= iid.ci_high_ms
    assert dep.ci_high_ms - dep.ci_low_ms > 2 * (iid.ci_high_ms - iid.ci_low_ms)
    assert dep.design_effect > 2 and dep.n_eff < sec.size / 2


def test_step_intervals_say_how_they_were_built(base_result):
    st = base_result.steps[-1]
    assert {"error_rate", "p50_ms", "p95_ms", "p99_ms"} <= set(st.interval_notes)
    assert st.interval_notes["error_rate"].startswith("batch means: ")
    q = st.latency.p(0.95)
    assert q.has_interval, q.reason
    assert q.ci_low_ms <= q.value_ms <= q.ci_high_ms and q.n_eff <= q.n
