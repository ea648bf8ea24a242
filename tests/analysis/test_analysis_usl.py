"""USL fit: parameter recovery, refusal, derived quantities, extrapolation flag."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from analysis import usl


@pytest.mark.parametrize(
    "sigma,kappa,lam", [(0.05, 2e-4, 100.0), (0.02, 1e-3, 12.0), (0.1, 5e-5, 3.0)]
)
def test_recovers_parameters_within_5_percent(sigma, kappa, lam):
    n = np.array([1, 4, 8, 16, 32, 48, 64, 96, 128, 160], dtype=float)
    rng = np.random.default_rng(7)
    x = usl.usl_model(n, sigma, kappa, lam) * (1 + rng.normal(0, 0.003, n.size))
    fit = usl.fit(n, x)
    assert fit.ok
    assert fit.sigma == pytest.approx(sigma, rel=0.05)
    assert fit.kappa == pytest.approx(kappa, rel=0.05)
    assert fit.lam == pytest.approx(lam, rel=0.05)
    assert fit.n_star == pytest.approx(math.sqrt((1 - fit.sigma) / fit.kappa))
    assert fit.x_max == pytest.approx(
        float(usl.usl_model(np.array([fit.n_star]), fit.sigma, fit.kappa, fit.lam)[0])
    )
    assert fit.r2 > 0.99
    for value, ci in (
        (fit.sigma, fit.sigma_ci),
        (fit.kappa, fit.kappa_ci),
        (fit.lam, fit.lam_ci),
        (fit.n_star, fit.n_star_ci),
        (fit.x_max, fit.x_max_ci),
    ):
        assert ci[0] <= value <= ci[1]


def test_refuses_below_six_levels():
    fit = usl.fit([1, 2, 4, 8, 16], [10, 19, 35, 60, 90])
    assert not fit.ok and "6" in fit.refused and fit.sigma is None
    with pytest.raises(ValueError):
        fit.predict(10)
    # repeated levels do not count twice
    assert not usl.fit([1, 1, 2, 2, 4, 4, 8, 8, 16, 16], [1] * 10).ok


def test_extrapolation_is_flagged():
    n = np.array([1, 2, 4, 8, 16, 32], dtype=float)
    fit = usl.fit(n, usl.usl_model(n, 0.03, 1e-3, 10.0))
    assert not fit.predict(96).extrapolated  # 3x the highest measured load
    pred = fit.predict(97)
    assert pred.extrapolated and pred.ci[0] <= pred.value <= pred.ci[1]


def test_linear_scaling_has_no_peak():
    n = np.arange(1, 9, dtype=float)
    fit = usl.fit(n, 5.0 * n)
    assert fit.ok and fit.sigma == pytest.approx(0, abs=1e-3)
    assert fit.kappa == pytest.approx(0, abs=1e-5)


def test_poor_fit_is_refused_and_r2_never_huge_negative():
    """Throughput that jumps around (no scaling curve) is refused, with the reason."""
    n = np.array([250, 500, 750, 1000, 1250, 1500], dtype=float)
    fit = usl.fit(n, [80.0, 310.0, 95.0, 330.0, 70.0, 320.0])
    assert not fit.ok and "poor fit" in fit.refused and "0.8" in fit.refused
    assert fit.n_star is None and fit.r2 is None
    assert not re.search(r"-\d{2,}", fit.refused)  # no "R² = -4,512"


def test_flat_throughput_is_refused():
    n = np.array([250, 500, 750, 1000, 1250, 1500], dtype=float)
    fit = usl.fit(n, [300.0, 302.0, 299.0, 301.0, 300.0, 303.0])
    assert not fit.ok and "flat" in fit.refused


def test_no_identifiable_peak_reports_no_n_star():
    """Near-linear data (kappa ~ 0): N* would be billions of users; it is not reported."""
    n = np.array([250, 500, 750, 1000, 1250, 1500], dtype=float)
    rng = np.random.default_rng(3)
    x = usl.usl_model(n, 0.02, 1e-9, 0.9) * (1 + rng.normal(0, 0.01, n.size))
    fit = usl.fit(n, x)
    assert fit.ok and fit.r2 > 0.8
    assert fit.n_star is None and fit.x_max is None and fit.n_star_ci is None
    assert fit.peak_note == usl.NO_PEAK == "no peak within the measured range"


def test_peak_within_range_is_reported_with_its_point_inside_the_interval():
    n = np.array([10, 20, 40, 60, 80, 100], dtype=float)
    rng = np.random.default_rng(4)
    x = usl.usl_model(n, 0.01, 2e-4, 1.0) * (1 + rng.normal(0, 0.005, n.size))
    fit = usl.fit(n, x)
    assert fit.ok and fit.peak_note is None
    assert fit.n_star_ci[0] <= fit.n_star <= fit.n_star_ci[1]
    assert fit.n_star <= usl.EXTRAPOLATION_LIMIT * 100
