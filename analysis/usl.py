"""Universal Scalability Law fit of throughput vs concurrency.

    X(N) = lambda * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))

sigma is contention (serialisation), kappa coherency (crosstalk), lambda the
throughput of one user.  Peak concurrency N* = sqrt((1 - sigma) / kappa) and
X_max = X(N*).  Fitted by bounded nonlinear least squares (scipy ``curve_fit``,
trust-region reflective) with sigma, kappa in [0, 1] and lambda > 0; parameter
intervals from the covariance matrix with Student-t quantiles; intervals of derived
quantities (N*, X_max, predictions) by drawing parameters from that normal
approximation (clipped to the bounds).

Public API::

    from analysis import usl
    fit = usl.fit([1, 2, 4, 8, 16, 32], [95, 180, 330, 560, 800, 900])
    if fit.ok:
        fit.sigma, fit.kappa, fit.lam, fit.n_star, fit.x_max, fit.r2
        fit.sigma_ci, fit.kappa_ci, fit.lam_ci, fit.n_star_ci, fit.x_max_ci
        fit.predict(100)   # Prediction(value, ci, extrapolated)
    else:
        fit.refused        # why no fit was made (fewer than 6 load levels, ...)

A fit is refused (``refused`` says why, every number is None) when it would mislead:
fewer than 6 load levels, a poor fit (R² < 0.8: the curve does not describe the data),
or flat throughput (the load levels do not move throughput, so sigma and lambda are not
identifiable).  When the fit is good but kappa is not distinguishable from 0, or the peak
N* lies beyond 3x the highest measured load, N* and X_max are not reported
(``peak_note`` = "no peak within the measured range"): the data say nothing about a
retrograde region they never reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

MIN_LEVELS = 6
#: Predictions beyond this multiple of the largest measured load are never printed as a
#: number ("beyond the measured range"): model error grows without bound out there.
EXTRAPOLATION_LIMIT = 3.0
#: Below this R² the USL does not describe the data and is refused.
MIN_R2 = 0.8
#: Throughput is "flat" when its range across the levels is below this fraction of its
#: mean (and the load itself varied): no scaling curve can be identified.
FLAT_THROUGHPUT = 0.10
NO_PEAK = "no peak within the measured range"
BEYOND = "beyond the measured range"
_DRAWS = 2000


def usl_model(n: np.ndarray, sigma: float, kappa: float, lam: float) -> np.ndarray:
    n = np.asarray(n, dtype=float)
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


@dataclass
class Prediction:
    """A model prediction with its interval; ``extrapolated`` beyond 3x measured load."""

    value: float
    ci: tuple[float, float]
    extrapolated: bool


@dataclass
class USLFit:
    """Result of :func:`fit`.  When ``refused`` is set every number is None."""

    n_levels: int
    max_measured: float
    refused: str | None = None
    sigma: float | None = None
    kappa: float | None = None
    lam: float | None = None
    sigma_ci: tuple[float, float] | None = None
    kappa_ci: tuple[float, float] | None = None
    lam_ci: tuple[float, float] | None = None
    n_star: float | None = None  # inf when kappa == 0 (no retrograde region)
    n_star_ci: tuple[float, float] | None = None
    x_max: float | None = None
    x_max_ci: tuple[float, float] | None = None
    r2: float | None = None
    n_star_extrapolated: bool = False  # N* above the highest measured load (projected)
    peak_note: str | None = None  # NO_PEAK when N* / X_max are not identifiable
    _draws: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.refused is None

    def predict(self, n: float) -> Prediction:
        """Throughput at concurrency ``n`` with a 95% interval."""
        if not self.ok:
            raise ValueError(f"USL fit refused: {self.refused}")
        value = float(usl_model(np.array([n]), self.sigma, self.kappa, self.lam)[0])
        draws = usl_model(np.full(len(self._draws), n), *self._draws.T)
        lo, hi = _hull(value, np.nanpercentile(draws, [2.5, 97.5]))
        return Prediction(value, (lo, hi), beyond_range(n, self.max_measured))

    def draws(self) -> np.ndarray:
        """Parameter draws (sigma, kappa, lambda) for propagating uncertainty."""
        return self._draws


def _n_star(sigma: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(kappa > 0, np.sqrt(np.clip(1 - sigma, 0, None) / kappa), np.inf)


def _x_max(sigma: np.ndarray, kappa: np.ndarray, lam: np.ndarray) -> np.ndarray:
    ns = _n_star(sigma, kappa)
    finite = np.isfinite(ns)
    # kappa == 0: X approaches lambda / sigma asymptotically (inf when sigma == 0 too).
    with np.errstate(divide="ignore", invalid="ignore"):
        asym = np.where(sigma > 0, lam / sigma, np.inf)
        peak = lam * ns / (1 + sigma * (ns - 1) + kappa * ns * (ns - 1))
    return np.where(finite, peak, asym)


def fit(concurrency, throughput, confidence: float = 0.95) -> USLFit:
    """Fit the USL; refuses (``refused`` set) below 6 distinct load levels."""
    n = np.asarray(concurrency, dtype=float)
    x = np.asarray(throughput, dtype=float)
    mask = np.isfinite(n) & np.isfinite(x) & (n > 0)
    n, x = n[mask], x[mask]
    levels = len(np.unique(n))
    max_n = float(n.max()) if n.size else 0.0
    if levels < MIN_LEVELS:
        return USLFit(
            levels,
            max_n,
            refused=(
                f"only {levels} load level(s); the USL needs at least {MIN_LEVELS} to fit "
                "three parameters with a meaningful goodness of fit"
            ),
        )
    lam0 = float(np.max(x / n))
    try:
        popt, pcov = optimize.curve_fit(
            usl_model,
            n,
            x,
            p0=[0.01, 1e-4, lam0],
            bounds=([0.0, 0.0, 1e-12], [1.0, 1.0, np.inf]),
            method="trf",
            x_scale=[0.01, 1e-4, lam0],
            maxfev=20000,
        )
    except (RuntimeError, ValueError) as exc:
        return USLFit(levels, max_n, refused=f"least squares did not converge: {exc}")
    sigma, kappa, lam = (float(v) for v in popt)
    resid = x - usl_model(n, *popt)
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    why = refusal(n, x, r2)
    if why:
        return USLFit(levels, max_n, refused=why, r2=None)
    dof = max(n.size - 3, 1)
    tq = float(stats.t.ppf(0.5 + confidence / 2, dof))
    se = np.sqrt(np.clip(np.diag(pcov), 0, None)) if np.all(np.isfinite(pcov)) else np.zeros(3)

    def ci(i: int, lo_b: float, hi_b: float) -> tuple[float, float]:
        return (float(max(lo_b, popt[i] - tq * se[i])), float(min(hi_b, popt[i] + tq * se[i])))

    draws = _draw_params(popt, pcov)
    ns_draws, xm_draws = _n_star(*draws[:, :2].T), _x_max(*draws.T)
    q = [50 - confidence * 50, 50 + confidence * 50]
    n_star = float(_n_star(np.array(sigma), np.array(kappa)))
    x_max = float(_x_max(np.array(sigma), np.array(kappa), np.array(lam)))
    kappa_ci = ci(1, 0.0, 1.0)
    peak_known = kappa > 0 and kappa_ci[0] > 0 and not beyond_range(n_star, max_n)
    n_star_ci = _hull(n_star, np.percentile(ns_draws, q, method="inverted_cdf"))
    if beyond_range(n_star_ci[1], max_n):
        n_star_ci = (n_star_ci[0], math.inf)  # printed as "beyond the measured range"
    return USLFit(
        n_levels=levels,
        max_measured=max_n,
        sigma=sigma,
        kappa=kappa,
        lam=lam,
        sigma_ci=ci(0, 0.0, 1.0),
        kappa_ci=kappa_ci,
        lam_ci=ci(2, 0.0, math.inf),
        n_star=n_star if peak_known else None,
        n_star_ci=n_star_ci if peak_known else None,
        x_max=x_max if peak_known else None,
        x_max_ci=_hull(x_max, np.percentile(xm_draws, q, method="inverted_cdf"))
        if peak_known
        else None,
        r2=r2,
        n_star_extrapolated=bool(n_star > max_n),
        peak_note=None if peak_known else NO_PEAK,
        _draws=draws,
    )


def refusal(n: np.ndarray, x: np.ndarray, r2: float) -> str | None:
    """Why a converged fit must still not be shown, or None.

    R² is reported only as "below 0.8" (never as a large negative number: below 0 it
    just means the curve is worse than a flat line through the mean).
    """
    mean = float(np.mean(x)) if x.size else 0.0
    if mean <= 0 or (float(np.ptp(x)) < FLAT_THROUGHPUT * mean and float(np.ptp(n)) > 0):
        return (
            f"throughput is flat across the load levels (range < {FLAT_THROUGHPUT:.0%} of its "
            "mean): contention and coherency cannot be identified"
        )
    if not np.isfinite(r2) or r2 < MIN_R2:
        shown = f"R² = {r2:.2f}" if np.isfinite(r2) and r2 >= 0 else "R² < 0"
        return f"poor fit ({shown}, below {MIN_R2}): the USL does not describe this run"
    return None


def _hull(point: float, ci) -> tuple[float, float]:
    """The interval widened to contain its own point estimate (a percentile interval of
    parameter draws can miss a point estimate that sits at a parameter bound)."""
    lo, hi = (float(v) for v in ci)
    return (min(lo, point), max(hi, point))


def beyond_range(load: float | None, max_measured: float) -> bool:
    """True when ``load`` is more than EXTRAPOLATION_LIMIT x the highest measured load."""
    return load is not None and (
        not math.isfinite(load) or load > EXTRAPOLATION_LIMIT * max(max_measured, 0.0)
    )


def _draw_params(popt: np.ndarray, pcov: np.ndarray, seed: int = 0) -> np.ndarray:
    """Draws from the asymptotic normal of the estimate, clipped to the parameter bounds."""
    rng = np.random.default_rng(seed)
    if not np.all(np.isfinite(pcov)):
        return np.tile(popt, (_DRAWS, 1))
    pcov = (pcov + pcov.T) / 2
    draws = rng.multivariate_normal(popt, pcov, size=_DRAWS, check_valid="ignore")
    draws[:, 0] = np.clip(draws[:, 0], 0, 1)
    draws[:, 1] = np.clip(draws[:, 1], 0, 1)
    draws[:, 2] = np.clip(draws[:, 2], 1e-12, None)
    return draws
