"""Time series for charts: throughput, users, errors and approximate percentiles per bucket.

Chart percentiles come from a log-binned histogram per time bucket (2% bin width), one
``bincount`` over all records, because exact per-bucket quantiles would cost a sort per
bucket.  These are drawn only; every reported number comes from the raw records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.runs import Run

BIN_RATIO = 1.02
MAX_BUCKETS = 300


@dataclass
class TimeSeries:
    bucket_s: float
    frame: pd.DataFrame  # t_s, users, throughput_rps, p50_ms, p95_ms, p99_ms, err_<class>


def bucket_seconds(span_s: float) -> float:
    for b in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if span_s / b <= MAX_BUCKETS:
            return float(b)
    return float(np.ceil(span_s / MAX_BUCKETS))


def build(run: Run) -> TimeSeries:
    ev = run.events
    start = run.start_us
    span_s = max(float(ev.ts_us.max() - start) / 1e6, 1.0) if len(ev) else 1.0
    b_s = bucket_seconds(span_s)
    bucket = np.clip((ev.ts_us - start) // int(b_s * 1e6), 0, None).astype(np.int64)
    nb = int(bucket.max()) + 1 if bucket.size else 1
    counts = np.bincount(bucket, minlength=nb)
    users = np.bincount(bucket, weights=ev.users, minlength=nb) / np.maximum(counts, 1)
    # Same arithmetic as floor(log(max(lat, 1)) / log(BIN_RATIO)), in place: one float
    # buffer for the 10M-record case instead of four temporaries.
    logs = np.maximum(ev.latency_us, 1).astype(float)
    np.log(logs, out=logs)
    np.divide(logs, np.log(BIN_RATIO), out=logs)
    np.floor(logs, out=logs)
    lbin = logs.astype(np.int64)
    del logs
    lo = int(lbin.min()) if lbin.size else 0
    nl = int(lbin.max()) - lo + 1 if lbin.size else 1
    hist = np.bincount(bucket * nl + (lbin - lo), minlength=nb * nl).reshape(nb, nl)
    cum = np.cumsum(hist, axis=1)
    frame = pd.DataFrame(
        {"t_s": np.arange(nb) * b_s, "users": users, "throughput_rps": counts / b_s}
    )
    for p in (0.5, 0.95, 0.99):
        idx = np.argmax(cum >= np.ceil(p * counts)[:, None], axis=1)
        val = BIN_RATIO ** (idx + lo + 0.5) / 1000.0
        frame[f"p{int(p * 100)}_ms"] = np.where(counts > 0, val, np.nan)
    err = ev.error_class
    ncls = max(len(err.categories), 1)
    eh = np.bincount(bucket * ncls + err.codes, minlength=nb * ncls).reshape(nb, ncls)
    for code, cls in enumerate(err.categories):
        if cls not in ("", "none", "ok"):
            frame[f"err_{cls}"] = eh[:, code] / b_s
    return TimeSeries(b_s, frame)


def resources(run: Run) -> pd.DataFrame:
    """Samples as t_s, source, metric, value (mean over labels per second) for charts."""
    s = run.samples
    if s.empty:
        return pd.DataFrame(columns=["t_s", "source", "metric", "value"])
    df = s.assign(t_s=((s["ts_us"] - run.start_us) // 1_000_000).astype(float))
    return df.groupby(["t_s", "source", "metric"], as_index=False, observed=True)["value"].mean()
