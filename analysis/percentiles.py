"""Quantiles with distribution-free confidence intervals from order statistics.

Why order statistics: for independent records the number below the true p-quantile is
Binomial(n, p) whatever the latency distribution, so the interval [X_(l), X_(u)]
covers the true quantile with probability >= 1 - alpha exactly.  Records of a load
step are not independent (latencies move together for seconds), so steps pass each
record's second and the ranks come from a dependence-aware interval of the share
below the quantile (Woodruff's method with batch means over time,
``analysis.intervals``); the binomial ranks remain the floor.  No resampling: O(n).

``scipy.stats.quantile_test(...).confidence_interval()`` computes the same kind of
interval but sorts the whole sample for every call; here the ranks are computed once
with ``scipy.stats.binom.ppf`` and every needed order statistic is pulled out with a
single ``np.partition`` (O(n)).  The tests check this agrees with scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats

from analysis.intervals import per_second, ratio_interval

PERCENTILES = (0.5, 0.9, 0.95, 0.99)
CONFIDENCE = 0.95
#: Minimum samples for a reported percentile.  P95 >= 110 and P99 >= 555 are the
#: thresholds set by the analysis issue (about 5.5 expected samples above the
#: quantile); other percentiles follow the same rule ceil(5.5 / (1 - p)).
MIN_SAMPLES = {0.95: 110, 0.99: 555}


def min_samples(p: float) -> int:
    """Samples needed before percentile ``p`` is reported as a number."""
    return MIN_SAMPLES.get(p, math.ceil(5.5 / (1.0 - p) - 1e-9))


@dataclass
class QuantileEstimate:
    """One percentile of one sample; values in milliseconds, or ``None`` with a reason."""

    p: float
    n: int
    value_ms: float | None
    ci_low_ms: float | None
    ci_high_ms: float | None
    reason: str | None = None  # e.g. "insufficient data (n=80 < 110)"
    #: Independent-equivalent sample size behind the interval (n / design effect).
    n_eff: float | None = None
    #: Variance of the interval's share relative to independent records (>= 1).
    design_effect: float = 1.0

    @property
    def ok(self) -> bool:
        """A point value is reported (enough samples for this percentile)."""
        return self.value_ms is not None

    @property
    def has_interval(self) -> bool:
        """The point value comes with an interval.  False when the records are too
        dependent over time for the window's length: the value is then a description
        of this window only, and ``reason`` says why it has no interval."""
        return self.ci_low_ms is not None and self.ci_high_ms is not None


def ci_ranks(n: int, p: float, confidence: float = CONFIDENCE) -> tuple[int, int]:
    """1-based ranks (l, u) with P(X_(l) <= xi_p <= X_(u)) >= confidence.

    B = #{X_i < xi_p} ~ Binomial(n, p); the interval misses low when B < l and high
    when B >= u, each kept at or below alpha / 2.  l may be 0 or u may be n + 1 when n is
    too small for a two-sided bound.
    """
    alpha = 1.0 - confidence
    lo = int(stats.binom.ppf(alpha / 2, n, p))
    hi = int(stats.binom.ppf(1 - alpha / 2, n, p)) + 1
    return lo, hi


def point_rank(n: int, p: float) -> int:
    """Nearest-rank estimator (1-based): numpy's ``method="inverted_cdf"``."""
    return max(1, math.ceil(p * n - 1e-9))


def quantiles_with_ci(
    values_us: np.ndarray,
    ps: tuple[float, ...] = PERCENTILES,
    confidence: float = CONFIDENCE,
    seconds: tuple[np.ndarray, int] | None = None,
    logs: np.ndarray | None = None,
) -> dict[float, QuantileEstimate]:
    """Percentiles of raw µs latencies with intervals.

    ``seconds`` is ``(second of every record, number of seconds)`` of the window (see
    ``intervals.second_index``).  With it the intervals account for dependence over time
    (batch means, ``analysis.intervals``); without it the records are taken as
    independent and the exact order-statistic interval is used.  ``logs``: the records'
    ``log_latency`` when the caller already has it (callers that summarise a sample and
    its parts take the logarithm of every record once).
    """
    n = int(values_us.shape[0])
    wanted: dict[float, _Ranks] = {}
    result: dict[float, QuantileEstimate] = {}
    for p in ps:
        need = min_samples(p)
        lo, hi = ci_ranks(n, p, confidence) if n else (0, 1)
        if n < need or lo < 1 or hi > n:
            reason = (
                f"insufficient data (n={n} < {need})"
                if n < need
                else (f"insufficient data (no two-sided {confidence:.0%} bound at n={n})")
            )
            result[p] = QuantileEstimate(p, n, None, None, None, reason)
        else:
            wanted[p] = _Ranks(lo, point_rank(n, p), hi, float(n), 1.0)
    if not wanted:
        return {p: result[p] for p in ps}
    part = values_us
    if seconds is not None:
        part = np.partition(values_us, sorted({r.mid - 1 for r in wanted.values()}))
        wanted = _dependent_ranks(values_us, part, wanted, seconds, confidence, result, logs)
    if wanted:
        kth = sorted({k - 1 for r in wanted.values() for k in (r.lo, r.mid, r.hi)})
        if part is values_us:  # the caller's array: select on a copy
            part = np.partition(part, kth)
        else:  # already our own partitioned copy: select in place, no second copy
            part.partition(kth)
        for p, r in wanted.items():
            result[p] = QuantileEstimate(
                p,
                n,
                float(part[r.mid - 1]) / 1000.0,
                float(part[r.lo - 1]) / 1000.0,
                float(part[r.hi - 1]) / 1000.0,
                n_eff=r.n_eff,
                design_effect=r.design_effect,
            )
    return {p: result[p] for p in ps}


class _Ranks(NamedTuple):
    """1-based order-statistic ranks of an interval and the sample size behind it."""

    lo: int
    mid: int
    hi: int
    n_eff: float
    design_effect: float


def _dependent_ranks(
    values_us: np.ndarray,
    part: np.ndarray,
    iid: dict[float, _Ranks],
    seconds: tuple[np.ndarray, int],
    confidence: float,
    result: dict[float, QuantileEstimate],
    logs: np.ndarray | None = None,
) -> dict[float, _Ranks]:
    """Woodruff interval: a dependence-aware interval for the share of records at or
    below the point estimate, mapped back to order statistics.

    The share F(x_p) is a ratio of per-second counts, so its interval comes from batch
    means over time (``intervals.ratio_interval``); ranks n * F_low and n * F_high + 1
    then bound the quantile, as the binomial ranks do for independent records.  Fills
    ``result`` with an insufficient-data estimate where the effective sample is too small.
    """
    sec, n_sec = seconds
    n = int(values_us.shape[0])
    totals = per_second(sec, n_sec)
    memory = mean_log_per_second(values_us, sec, n_sec, totals, logs)
    below = _per_second_below(values_us, sec, n_sec, {p: part[r.mid - 1] for p, r in iid.items()})
    out: dict[float, _Ranks] = {}
    for p, ranks in iid.items():
        mid = ranks.mid
        hits = below[p]
        ri = ratio_interval(hits, totals, centre=p, confidence=confidence, memory=memory)
        need = min_samples(p)
        if not ri.ok:
            reason = ri.reason
        elif ri.n_eff < need:
            reason = (
                f"insufficient data (effective n={ri.n_eff:.0f} < {need}: {n} requests "
                f"behave like {ri.n_eff:.0f} independent ones, design effect "
                f"{ri.design_effect:.1f})"
            )
        else:
            lo, hi = math.floor(n * ri.low), math.ceil(n * ri.high) + 1
            # never narrower than the independent-records interval
            lo, hi = min(lo, ranks.lo), max(hi, ranks.hi)
            if lo >= 1 and hi <= n:
                out[p] = _Ranks(lo, mid, hi, ri.n_eff, ri.design_effect)
                continue
            reason = f"insufficient data (no two-sided {confidence:.0%} bound at n={n})"
        value = float(part[mid - 1]) / 1000.0  # the point stands; only the interval is refused
        result[p] = QuantileEstimate(p, n, value, None, None, reason, ri.n_eff, ri.design_effect)
    return out


def _per_second_below(
    values_us: np.ndarray, sec: np.ndarray, n_sec: int, thresholds: dict[float, float]
) -> dict[float, np.ndarray]:
    """Per-second count of records <= each threshold, in two passes over the records."""
    ordered = sorted(set(thresholds.values()))
    bucket = np.searchsorted(np.asarray(ordered), values_us, side="left")
    width = len(ordered) + 1
    counts = np.bincount(sec * width + bucket, minlength=n_sec * width)
    cum = np.cumsum(counts[: n_sec * width].reshape(n_sec, width), axis=1).astype(float)
    return {p: cum[:, ordered.index(x)] for p, x in thresholds.items()}


def log_latency(values_us: np.ndarray) -> np.ndarray:
    """Natural log of every latency (µs, floored at 1) as ``mean_log_per_second`` uses."""
    return np.log(np.maximum(values_us, 1).astype(float))


def mean_log_per_second(
    values_us: np.ndarray,
    sec: np.ndarray,
    n_sec: int,
    totals: np.ndarray,
    logs: np.ndarray | None = None,
) -> np.ndarray:
    """Mean log-latency per second (empty seconds at the overall mean).

    Why: the slow state that makes latencies dependent (queue length, a stall) shows
    first and most clearly in the typical latency of each second; the per-second share
    below a tail quantile carries the same state through a threshold plus binomial
    noise, which hides its memory.  Its autocorrelation time bounds the batch length.
    """
    if logs is None:
        logs = log_latency(values_us)
    sums = per_second(sec, n_sec, logs)
    mean = float(logs.mean()) if logs.size else 0.0
    return np.where(totals > 0, sums / np.maximum(totals, 1), mean)


def max_ms(values_us: np.ndarray) -> float | None:
    return float(values_us.max()) / 1000.0 if values_us.size else None


def proportion_ci(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for an error rate (scipy's binomtest)."""
    if n == 0:
        return (0.0, 1.0)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))
