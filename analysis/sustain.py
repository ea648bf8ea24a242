"""Deciding an upper-limit criterion from its course through the steady window.

Why: the dependence-aware interval (``analysis.intervals``) needs a window several times
longer than the data's memory.  A window whose latency keeps rising (a queue still
filling, an overloaded system) has a memory as long as the window itself, so it was
refused "for memory" although the question it answers is plain: the system does not
sustain the load.  Symmetrically a latency at a small fraction of its limit all the way
through does not need a narrow interval to be below it.  Simulation output analysis
treats non-stationarity as information (docs/statistics.md "Overload, drift and far
inside the limit"); this module is that rule:

1. Cut the window into ``k`` consecutive time batches of about ``BATCH_S`` seconds and
   take the statistic of each (a batch P95, a batch error rate).
2. Regress the batch values on time (OLS) with a Newey–West HAC covariance
   (``statsmodels``), Student's t on ``k - 2`` degrees of freedom: slope, level over the
   window and level at its end, each with a 95 % interval that allows for the batches'
   remaining dependence.
3. Decide:

   - **fail**: every batch above the limit and the 95 % lower bound of the level over the
     window at least ``OVER_FACTOR`` times the limit (held above it: the system does not
     sustain the load); or every batch above the limit, rising significantly, with the
     level at the window's end at least ``OVER_FACTOR`` times the limit (its lower bound);
     or every batch above ``1 / FAR_FRACTION`` times the limit with the trend's lower
     bound one window on still above the limit (far outside);
   - **pass** (far inside): every batch below ``FAR_FRACTION`` of the limit and the upper
     bound of the trend, carried one window length past the end, still below the limit;
   - **rising**: a significant rise that may reach (or is above) the limit within one
     more window, not yet far outside: the window is not steady state; the criterion is
     held (INCONCLUSIVE), never passed, and failed only by its interval;
   - otherwise nothing: the dependence-aware interval decides.

Everything is deterministic; O(n) over the records plus a regression on <= 30 points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Target batch length (s): long enough for a batch P95 of a few hundred records, short
#: enough for a 40 s window to give 4 batches.
BATCH_S = 10.0
#: Fewest batches a decision is taken from (a trend on k - 2 = 2 degrees of freedom).
MIN_BATCHES = 4
MAX_BATCHES = 30
#: Fewest records in every batch (a batch P95 of 20 records is its second-largest).
MIN_BATCH_RECORDS = 20
#: A value below this fraction of its limit in every batch is "far inside".
FAR_FRACTION = 0.5
#: A level whose lower bound is this many times its limit, with every batch above the
#: limit, is held above it.  The margin is what keeps a stationary value just below its
#: limit from failing when its memory is as long as the window (a whole 90 s window then
#: sits up to ~20 % off the long-run value, docs/statistics.md): 1.5x is more than twice
#: that wander, and a P95 half again over its limit is a failed objective for users.
OVER_FACTOR = 1.5
CONFIDENCE = 0.95

FAIL, PASS, RISING = "fail", "pass", "rising"


@dataclass(frozen=True)
class Batches:
    """One statistic per consecutive time batch of a window."""

    t_s: np.ndarray  # batch centre, seconds from the window start
    values: np.ndarray
    batch_s: float
    window_s: float

    @property
    def k(self) -> int:
        return int(self.values.size)


@dataclass(frozen=True)
class Trend:
    """OLS of batch values on time with a HAC covariance (unit of the values per s)."""

    slope: float
    slope_ci: tuple[float, float]
    mean_ci: tuple[float, float]  # level over the window (at its centre)
    end: float  # fitted level at the window's end
    end_ci: tuple[float, float]
    ahead_high: float  # upper bound of the level one more window past the end
    ahead_low: float  # lower bound of the level one more window past the end

    @property
    def rising(self) -> bool:
        return self.slope_ci[0] > 0


@dataclass(frozen=True)
class Decision:
    """What the window's course says: FAIL, PASS, RISING, or None (not decided here)."""

    status: str | None
    reason: str
    batches: Batches | None = None
    trend: Trend | None = None


def _batch_of(ts_us: np.ndarray, start_us: int, end_us: int, n: int) -> tuple[np.ndarray, int]:
    """Batch index of every record and the number of batches (0: too short/too few).

    Batches are equal in time; when one holds fewer than ``MIN_BATCH_RECORDS`` records (a
    route whose callers are stuck in a queue comes in bursts), fewer, longer batches are
    tried down to ``MIN_BATCHES`` rather than giving up on the window.
    """
    window_s = max(end_us - start_us, 1) / 1e6
    span = max(end_us - start_us, 1)
    rel = np.asarray(ts_us, dtype=np.int64) - start_us
    for k in range(min(MAX_BATCHES, int(window_s // BATCH_S), n // MIN_BATCH_RECORDS),
                   MIN_BATCHES - 1, -1):  # fmt: skip
        b = np.clip((rel * k) // span, 0, k - 1)
        if np.bincount(b, minlength=k).min() >= MIN_BATCH_RECORDS:
            return b, k
    return np.zeros(0, dtype=np.int64), 0


def _batches(values: np.ndarray, window_s: float, k: int) -> Batches:
    batch_s = window_s / k
    return Batches((np.arange(k) + 0.5) * batch_s, values, batch_s, window_s)


def batch_quantiles(
    values: np.ndarray, ts_us: np.ndarray, start_us: int, end_us: int, p: float
) -> Batches | None:
    """The p-quantile (nearest rank) of each time batch; None when the window is too
    short or a batch has fewer than ``MIN_BATCH_RECORDS`` records."""
    values = np.asarray(values)
    b, k = _batch_of(ts_us, start_us, end_us, values.size)
    if not k:
        return None
    counts = np.bincount(b, minlength=k)
    if counts.min() < MIN_BATCH_RECORDS:
        return None
    order = np.argsort(b, kind="stable")
    sorted_vals = values[order]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    q = np.array(
        [
            np.quantile(sorted_vals[offsets[i] : offsets[i + 1]], p, method="inverted_cdf")
            for i in range(k)
        ],
        dtype=float,
    )
    return _batches(q, (end_us - start_us) / 1e6, k)


def batch_ratios(hits: np.ndarray, ts_us: np.ndarray, start_us: int, end_us: int) -> Batches | None:
    """Share of ``hits`` (a boolean per record) in each time batch."""
    hits = np.asarray(hits, dtype=bool)
    b, k = _batch_of(ts_us, start_us, end_us, hits.size)
    if not k:
        return None
    counts = np.bincount(b, minlength=k)
    if counts.min() < MIN_BATCH_RECORDS:
        return None
    rate = np.bincount(b, weights=hits.astype(float), minlength=k) / counts
    return _batches(rate, (end_us - start_us) / 1e6, k)


def hac_trend(b: Batches, confidence: float = CONFIDENCE) -> Trend:
    """Slope and levels of the batch values with Newey–West (HAC) standard errors.

    Lags: the usual rule floor(4 (k/100)^(2/9)), at least 1; Student's t on k - 2
    degrees of freedom (``use_t``), so 4 batches give a wide, honest interval.
    """
    import statsmodels.api as sm  # imported here: a heavy import most callers never need

    k = b.k
    t = b.t_s - b.window_s / 2  # centred: the intercept is the level over the window
    y = b.values.astype(float)
    x = sm.add_constant(t, has_constant="add")
    lags = max(1, math.floor(4 * (k / 100) ** (2 / 9)))
    fit = sm.OLS(y, x).fit(cov_type="HAC", cov_kwds={"maxlags": lags}, use_t=True)
    cov = np.asarray(fit.cov_params())
    tq = float(stats.t.ppf(0.5 + confidence / 2, k - 2)) if k > 2 else math.inf
    a, s = (float(v) for v in fit.params)

    def at(x_s: float) -> tuple[float, float]:
        vec = np.array([1.0, x_s])
        se = math.sqrt(max(float(vec @ cov @ vec), 0.0))
        return a + s * x_s, se

    se_s = math.sqrt(max(cov[1, 1], 0.0))
    end, se_end = at(b.window_s / 2)
    ahead, se_ahead = at(b.window_s / 2 + b.window_s)
    se_a = math.sqrt(max(cov[0, 0], 0.0))
    return Trend(
        slope=s,
        slope_ci=(s - tq * se_s, s + tq * se_s),
        mean_ci=(a - tq * se_a, a + tq * se_a),
        end=end,
        end_ci=(end - tq * se_end, end + tq * se_end),
        ahead_high=ahead + tq * se_ahead,
        ahead_low=ahead - tq * se_ahead,
    )


def decide(b: Batches | None, limit: float, describe) -> Decision:
    """Decision of an upper limit (``value < limit``) from the batches' course.

    ``describe(value) -> str`` formats a value in the criterion's unit for the reason.
    """
    if b is None:
        return Decision(None, "window too short for time batches")
    y = b.values
    tr = hac_trend(b)
    every = f"every {b.batch_s:.3g} s of the {b.window_s:.0f} s window"
    rate = f"{describe(tr.slope)}/s"
    far = limit / FAR_FRACTION
    over = OVER_FACTOR * limit
    above = bool(np.all(y >= limit))
    if above and tr.rising and tr.end_ci[0] >= over:
        why = (
            f"above {describe(limit)} in {every}, rising {rate} to {describe(tr.end)} at its "
            f"end (95% lower bound {describe(tr.end_ci[0])}, over {OVER_FACTOR:g}x the limit)"
        )
        return Decision(FAIL, why, b, tr)
    if above and tr.mean_ci[0] >= over:
        level = (tr.mean_ci[0] + tr.mean_ci[1]) / 2
        trend = f", rising {rate}" if tr.rising else ""
        why = (
            f"above {describe(limit)} in {every} ({describe(float(y.min()))}–"
            f"{describe(float(y.max()))}{trend}; level {describe(level)}, 95% lower bound "
            f"{describe(tr.mean_ci[0])}, over {OVER_FACTOR:g}x the limit)"
        )
        return Decision(FAIL, why, b, tr)
    if bool(np.all(y >= far)) and tr.ahead_low >= limit:
        why = (
            f"above {describe(limit)} in {every} (at least {describe(float(y.min()))}, over "
            f"{1 / FAR_FRACTION:g}x the limit), and its trend stays above it one window on"
        )
        return Decision(FAIL, why, b, tr)
    if bool(np.all(y < FAR_FRACTION * limit)) and tr.ahead_high < limit:
        why = (
            f"below {FAR_FRACTION:.0%} of {describe(limit)} in {every} (highest "
            f"{describe(float(y.max()))}), and its trend stays below the limit one window on"
        )
        return Decision(PASS, why, b, tr)
    if tr.rising and tr.ahead_high >= limit:
        why = (
            f"rising {rate} through the window ({describe(float(y[0]))} to "
            f"{describe(float(y[-1]))}): not steady yet, it may be above {describe(limit)} "
            "within one more window; hold the step longer"
        )
        return Decision(RISING, why, b, tr)
    return Decision(None, f"{describe(float(y.min()))}–{describe(float(y.max()))} in {every}")
