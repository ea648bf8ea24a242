"""Comparison: a 10% shift is a regression; two draws from one distribution are not."""

from __future__ import annotations

import numpy as np

from analysis import load_run
from analysis.compare import (
    IMPROVEMENT,
    NO_CHANGE,
    REGRESSION,
    compare_runs,
    compare_samples,
    hodges_lehmann,
)
from analysis.synthetic import SyntheticSpec, write_run


def test_hodges_lehmann_of_a_pure_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(100, 10, 500)
    assert abs(hodges_lehmann(a + 7, a) - 7) < 1e-9


def test_detects_10_percent_shift_both_ways():
    rng = np.random.default_rng(1)
    base = rng.lognormal(np.log(200_000), 0.6, 5000)
    slower = rng.lognormal(np.log(220_000), 0.6, 5000)
    c = compare_samples("x", slower, base)
    assert c.verdict == REGRESSION and 0.05 < c.relative_shift < 0.15 and c.p_value < 1e-6
    assert compare_samples("x", base, slower).verdict == IMPROVEMENT


def test_same_distribution_is_not_flagged_over_repeated_draws():
    """20 pairs of draws from one distribution: none flagged.

    Two conditions must both fail by chance: p < 0.05 and |shift| > 5%; at n = 3000 the
    HL shift's standard error is ~2%, so a false flag has probability well under 1% per
    pair.
    """
    rng = np.random.default_rng(2)
    flags = 0
    for _ in range(20):
        a = rng.lognormal(np.log(200_000), 0.6, 3000)
        b = rng.lognormal(np.log(200_000), 0.6, 3000)
        flags += compare_samples("x", a, b).verdict != NO_CHANGE
    assert flags == 0


def test_compare_runs_end_to_end(tmp_path):
    base = load_run(write_run(tmp_path / "base", SyntheticSpec(seed=11)))
    same = load_run(write_run(tmp_path / "same", SyntheticSpec(seed=12)))
    slow = load_run(write_run(tmp_path / "slow", SyntheticSpec(seed=13, latency_scale=1.1)))
    c_same = compare_runs(same, base)
    assert c_same.verdict == NO_CHANGE, [(e.endpoint, e.verdict) for e in c_same.endpoints]
    c_slow = compare_runs(slow, base)
    assert c_slow.verdict == REGRESSION
    assert c_slow.overall.verdict == REGRESSION
    assert 0.05 < c_slow.overall.relative_shift < 0.16
    assert c_slow.loads == [10.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    assert {e.endpoint for e in c_slow.endpoints} >= {"GET /products", "POST /checkout"}


def test_insufficient_samples():
    assert compare_samples("x", np.ones(10), np.ones(10)).verdict == "insufficient data"
