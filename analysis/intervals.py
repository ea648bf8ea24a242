"""Dependence-aware intervals: batch means over time, sized by the data's memory.

Why: requests inside a load step are not independent.  Latency and errors move together
for seconds at a time (queues build and drain, a GC pause or a noisy neighbour slows
every request in flight), so an interval that treats n requests as n independent draws
is far too narrow: it describes the sampling of requests, not how much the figure moves
when the step is run again.  See docs/statistics.md for the method and its checks.

The method, for any statistic that is a ratio of per-request counts (an error rate, the
share of requests at or below a latency):

1. Count per second of the step window: hits ``c_s`` and requests ``n_s``.
2. Estimate how long the residual series ``z_s = c_s - p n_s`` remembers itself: its
   integrated autocorrelation time ``tau`` (seconds), by an AR(1) plug-in at a 95 %
   upper bound of the lag-1 autocorrelation (for percentiles also of the per-second
   mean log-latency; the larger wins).
3. Cut the window into ``k`` consecutive time batches of at least ``2 tau`` seconds (at
   most ``MAX_BATCHES``), so batch totals are close to independent.  Fewer than
   ``MIN_BATCHES`` batches: the effective sample is too small and no interval is given.
4. Variance of the ratio from the batch residuals (the cluster/ratio estimator),
   corrected for batch means' remaining bias under the AR(1), never below the binomial
   variance; its design effect gives an effective sample size ``n_eff = n / deff``.
5. A Wilson score interval at ``n_eff`` with Student's t on ``k - 1`` degrees of freedom
   instead of the normal quantile (few batches: a wider, honest interval).

Everything is closed-form and deterministic: no resampling, no seed, O(n) per statistic.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
#: Fewest time batches an interval is built from.  A t statistic over q roughly
#: independent group estimates is valid, and conservative, for q >= 2 (Ibragimov and
#: Müller 2010); with 3 batches t_2 = 4.30 makes the interval more than twice as wide
#: as the normal one, which is the honest price of a short window.  With 4, clean
#: 25 s windows were refused too often (a third of them in simulation).
MIN_BATCHES = 3
#: More batches than this add little (t_29 = 2.05 vs 1.96) and make each batch shorter.
MAX_BATCHES = 30
#: Batch length in units of the integrated autocorrelation time.  The batch-means
#: variance is biased low by roughly (tau - 1) / (2 m) for batches of m seconds
#: (AR(1)); at m = 2 tau the remaining bias is small enough for ``batch_means_bias``
#: to correct without leaning hard on the AR(1) shape.
BATCH_TAU_FACTOR = 2.0
#: Largest lag-1 autocorrelation believed (tau = 199 s): beyond this the series is a
#: trend, and the window is then judged too short anyway.
MAX_RHO = 0.99
#: One-sided normal quantile of the upper bound on the lag-1 autocorrelation.
RHO_Z = 1.645


@dataclass(frozen=True)
class Batching:
    """How one per-second series was cut into time batches."""

    seconds: int  # length of the per-second series
    tau_s: float  # integrated autocorrelation time estimate, seconds
    batches: int  # k; 0 when the window is too short for MIN_BATCHES
    batch_s: float  # seconds per batch (seconds / batches)

    @property
    def ok(self) -> bool:
        return self.batches >= MIN_BATCHES

    def why_not(self) -> str:
        """Reason text for 'insufficient data' when ``ok`` is false."""
        need = math.ceil(BATCH_TAU_FACTOR * self.tau_s) * MIN_BATCHES
        return (
            f"insufficient data (effective sample too small: a {self.seconds} s window with "
            f"latency/error memory of ~{self.tau_s:.1f} s gives fewer than {MIN_BATCHES} "
            f"independent batches; need ~{need} s of steady state)"
        )


@dataclass(frozen=True)
class RatioInterval:
    """Interval of a ratio of counts, with what it was built from."""

    estimate: float
    low: float | None
    high: float | None
    n: int
    n_eff: float  # n / design effect
    design_effect: float  # variance / binomial variance, >= 1
    batching: Batching
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.low is not None


def second_index(ts_us: np.ndarray, start_us: int, end_us: int) -> tuple[np.ndarray, int]:
    """Second of the window (0-based) of every record, and the number of seconds.

    A trailing partial second of at least half a second is its own bin; a shorter one
    is folded into the last whole second (a stub bin would be a noisy batch of its own).
    """
    span = max(end_us - start_us, 1)
    seconds = max(1, int(round(span / 1e6)))
    sec = (np.asarray(ts_us, dtype=np.int64) - start_us) // 1_000_000
    np.clip(sec, 0, seconds - 1, out=sec)
    return sec, seconds


def steady_seconds(ts_us: np.ndarray) -> np.ndarray:
    """Each record's second, counting only seconds that have records: pooled steady-state
    windows are not contiguous, and the gaps between them are not seconds of data."""
    if not ts_us.size:
        return np.zeros(0, dtype=np.int64)
    raw = (ts_us - ts_us.min()) // 1_000_000
    top = int(raw.max())
    if top > 4 * raw.size + 1_000_000:  # sparse seconds: a bincount would be too large
        return np.unique(raw, return_inverse=True)[1].astype(np.int64)
    # Rank of each second among the occupied ones (what np.unique's inverse gives), in
    # O(n) from a bincount over the seconds instead of an O(n log n) sort of the records.
    rank = np.cumsum(np.bincount(raw, minlength=top + 1) > 0, dtype=np.int64) - 1
    return rank[raw]


def per_second(sec: np.ndarray, seconds: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Totals per second (counts, or sums of ``weights``)."""
    return np.bincount(sec, weights=weights, minlength=seconds)[:seconds].astype(float, copy=False)


def autocorrelation_time(z: np.ndarray) -> float:
    """Upper bound on the integrated autocorrelation time (in samples) of a series.

    AR(1) plug-in tau = (1 + rho) / (1 - rho) (as in Andrews' HAC bandwidth), taken at
    a one-sided 95 % upper bound of the lag-1 autocorrelation rather than at its
    estimate: r1 from a few dozen seconds is noisy and biased low (Kendall: by about
    (1 + 3 rho) / S), and a window whose memory was underestimated by chance would
    otherwise get a confidently narrow interval.  A negative bound counts as zero:
    dependence never narrows an interval below the independent case.
    """
    z = np.asarray(z, dtype=float)
    s = z.size
    if s < 4:
        return 1.0
    d = z - z.mean()
    den = float(d @ d)
    if den <= 0:
        return 1.0
    r1 = float(d[:-1] @ d[1:]) / den
    r1 += (1.0 + 3.0 * max(r1, 0.0)) / s
    upper = r1 + RHO_Z * math.sqrt(max(1.0 - r1 * r1, 0.0) / s)
    rho = min(max(upper, 0.0), MAX_RHO)
    return (1.0 + rho) / (1.0 - rho)


def plan_batches(z: np.ndarray, memory: np.ndarray | None = None) -> Batching:
    """Number of time batches for a per-second residual series (see module doc).

    ``memory`` is a second per-second series of the same window whose autocorrelation
    time also bounds the batch length (e.g. the mean log-latency per second, a smoother
    view of the same slow state than the residual counts of a tail share).
    """
    seconds = int(np.asarray(z).size)
    tau = autocorrelation_time(z)
    if memory is not None:
        tau = max(tau, autocorrelation_time(memory))
    min_len = max(1, math.ceil(BATCH_TAU_FACTOR * tau - 1e-9))
    k = min(MAX_BATCHES, seconds // min_len)
    if k < MIN_BATCHES:
        return Batching(seconds, tau, 0, float(seconds))
    return Batching(seconds, tau, k, seconds / k)


def ar1_sum_variance(m: float, phi: float) -> float:
    """Variance of the sum of m consecutive values of a unit-variance AR(1)."""
    if phi <= 0:
        return m
    return m * (1 + phi) / (1 - phi) - 2 * phi * (1 - phi**m) / (1 - phi) ** 2


def batch_means_bias(seconds: int, k: int, tau: float) -> float:
    """E[batch-means variance] / true variance of the total, for an AR(1) with this tau.

    Batches a few autocorrelation times long still share part of their memory with
    their neighbours, and the spread of batch totals around their own mean misses what
    the whole window shares: both bias the estimator low.  Dividing by this ratio (at the
    upper-bound tau) removes that bias where the AR(1) describes the data and errs wide
    where the memory is shorter.
    """
    phi = (tau - 1) / (tau + 1)
    m = seconds / k
    total = ar1_sum_variance(seconds, phi)
    expected = k * (k * ar1_sum_variance(m, phi) - total / k) / (k - 1)
    return min(1.0, max(expected / total, 1e-3))


def batch_sums(series: np.ndarray, k: int) -> np.ndarray:
    """Totals of ``k`` consecutive, near-equal time batches of a per-second series."""
    seconds = series.size
    batch = (np.arange(seconds) * k) // seconds
    return np.bincount(batch, weights=series, minlength=k)


@functools.lru_cache(maxsize=256)
def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2, df))


def wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion p at sample size n and quantile z."""
    if n <= 0:
        return 0.0, 1.0
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def ratio_interval(
    hits: np.ndarray,
    totals: np.ndarray,
    centre: float | None = None,
    confidence: float = CONFIDENCE,
    memory: np.ndarray | None = None,
) -> RatioInterval:
    """Dependence-aware interval of sum(hits) / sum(totals) from per-second counts.

    ``centre`` is the proportion the interval is built around (the nominal p of a
    quantile, whose empirical share differs only by ties); default the observed ratio.
    ``memory``: see ``plan_batches``.
    """
    hits = np.asarray(hits, dtype=float)
    totals = np.asarray(totals, dtype=float)
    n = int(round(totals.sum()))
    p_obs = float(hits.sum() / n) if n else 0.0
    p = p_obs if centre is None else centre
    z = hits - p_obs * totals
    plan = plan_batches(z, memory)
    if n == 0:
        return RatioInterval(p, None, None, 0, 0.0, 1.0, plan, "insufficient data (n=0)")
    if not plan.ok:
        return RatioInterval(p, None, None, n, 0.0, 1.0, plan, plan.why_not())
    k = plan.batches
    zb = batch_sums(z, k)
    var_batch = float(zb @ zb) * k / (k - 1) / (n * n)  # ratio (linearised) estimator
    var_batch /= batch_means_bias(plan.seconds, k, plan.tau_s)
    var_binom = p_obs * (1 - p_obs) / n
    deff = max(1.0, var_batch / var_binom) if var_binom > 0 else 1.0
    n_eff = n / deff
    low, high = wilson(p, n_eff, t_quantile(k - 1, confidence))
    return RatioInterval(p, low, high, n, n_eff, deff, plan)


def mean_rate_interval(
    counts: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """Mean per-second rate and its batch-means t interval (throughput).

    Same batching as ``ratio_interval``; with fewer than MIN_BATCHES the window is
    still cut in two (t with 1 degree of freedom): a very wide interval, not a
    zero-width one.
    """
    counts = np.asarray(counts, dtype=float)
    seconds = counts.size
    if seconds == 0:
        return 0.0, 0.0, 0.0
    rate = float(counts.mean())
    if seconds < 2:
        return rate, 0.0, math.inf
    plan = plan_batches(counts - rate)
    k = plan.batches if plan.ok else 2
    sums = batch_sums(counts, k)
    lengths = np.bincount((np.arange(seconds) * k) // seconds, minlength=k)
    per_batch = sums / lengths
    half = t_quantile(k - 1, confidence) * float(per_batch.std(ddof=1)) / math.sqrt(k)
    return rate, max(0.0, rate - half), rate + half
