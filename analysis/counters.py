"""Cumulative counters in the samples table (cache hits, Stripe calls, job counts, ...).

Counters are sampled as running totals (as Redis INFO and Prometheus expose them), so a
window's amount is last - first per labelled series, summed over series.  A counter
reset (restart of the process) is handled by summing only positive increments.  A metric
``x`` is also found as ``x_total`` (the Prometheus client's name for counter ``x``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from runformat.metrics import CACHE_HITS, CACHE_MISSES, KEYSPACE_HITS, KEYSPACE_MISSES


def counter_delta(
    samples: pd.DataFrame,
    source: str,
    metric: str,
    start_us: int | None = None,
    end_us: int | None = None,
) -> float | None:
    """Increase of a counter inside [start_us, end_us); None when never sampled."""
    if samples.empty:
        return None
    # Prometheus client counters are exposed with a ``_total`` suffix.
    names = {str(m) for m in samples.loc[samples["source"] == source, "metric"].unique()}
    if metric not in names and f"{metric}_total" in names:
        metric = f"{metric}_total"
    sel = (samples["source"] == source) & (samples["metric"] == metric)
    if start_us is not None:
        sel &= samples["ts_us"] >= start_us
    if end_us is not None:
        sel &= samples["ts_us"] < end_us
    return positive_increments(samples[sel])


def positive_increments(win: pd.DataFrame) -> float | None:
    """Sum of the positive increments of every labelled series in ``win`` (samples of one
    counter), None when empty: a counter that resets (a restarted service) is skipped over
    rather than counted as a negative delta."""
    if win.empty:
        return None
    total = 0.0
    for _, series in win.sort_values("ts_us").groupby("labels", observed=True)["value"]:
        inc = np.diff(series.to_numpy())
        total += float(inc[inc > 0].sum())
    return total


def hit_rate(
    samples: pd.DataFrame, start_us: int | None = None, end_us: int | None = None
) -> tuple[float | None, str]:
    """Cache hit rate: the service's own counters first, Redis keyspace counters second."""
    for source, hits_m, miss_m in (
        ("service", CACHE_HITS, CACHE_MISSES),
        ("redis", KEYSPACE_HITS, KEYSPACE_MISSES),
    ):
        hits = counter_delta(samples, source, hits_m, start_us, end_us)
        misses = counter_delta(samples, source, miss_m, start_us, end_us)
        if hits is not None and misses is not None and hits + misses > 0:
            return hits / (hits + misses), f"{source} {hits_m}/{miss_m}"
    return None, "no cache hit/miss counters sampled"


def counter_over_period(
    samples: pd.DataFrame,
    source: str,
    metric: str,
    start_us: int,
    end_us: int,
    tiled: bool = False,
) -> tuple[float | None, str]:
    """Increase of a counter over a whole period, bracketed by samples outside it.

    Counts from the last sample at or before ``start_us`` to the first at or after
    ``end_us`` (per labelled series, positive increments only), so errors in the first
    and last second of the load are counted too.  Returns ``(None, why)`` — "unknown",
    never 0 — when the counter was not sampled or either bracketing sample is missing
    (a run killed before its final sample, a sampler that failed).

    ``tiled`` is for periods that follow each other (the levels of a ramp): each
    increment between two samples is counted by the period its later sample falls in,
    ``(start_us, end_us]``, so adjacent periods never both count the second around
    their boundary and their counts add up.
    """
    if samples.empty:
        return None, f"{source} {metric} not sampled"
    names = {str(m) for m in samples.loc[samples["source"] == source, "metric"].unique()}
    if metric not in names and f"{metric}_total" in names:
        metric = f"{metric}_total"
    series = samples[(samples["source"] == source) & (samples["metric"] == metric)]
    if series.empty:
        return None, f"{source} {metric} not sampled"
    total = 0.0
    for _, s in series.sort_values("ts_us").groupby("labels", observed=True):
        ts, values = s["ts_us"].to_numpy(), s["value"].to_numpy()
        before = np.flatnonzero(ts <= start_us)
        after = np.flatnonzero(ts >= end_us)
        if not before.size or not after.size:
            edge = "before the load started" if not before.size else "after the load ended"
            return None, f"unknown: no {metric} sample {edge}"
        last = int(np.searchsorted(ts, end_us, side="right")) if tiled else after[0] + 1
        inc = np.diff(values[before[-1] : last])
        total += float(inc[inc > 0].sum())
    if tiled:
        return total, f"{metric} increments whose later sample falls in the period"
    return total, f"{metric} from the last sample before the load to the first after it"
