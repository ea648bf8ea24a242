"""Job completion (seed §4.3: "99.9% job completion rate") from the queue's own counters.

The service exports, for each queue, the running totals the queue keeps in Redis
(``marketplace_queue_jobs_{enqueued,completed,failed}_total{queue=...}``,
``marketplace/jobs.py``); the 1 Hz samplers record them as source ``service``.

The question is: of the jobs *enqueued in the window*, how many completed? A job
enqueued near the end needs time (payouts wait 60 s by design, §4.3), so outcomes
are read ``grace_s`` after the window's end, or at the last sample if every job
of the window has ended by then. When the samples stop earlier with jobs of the
window still pending, the window is undecidable (None, with what is known so far
in the detail): a job that was never seen to end is neither a success nor a
failure. A run that wants payouts judged must keep sampling for the grace after
its load stops.

Counters say how many jobs ended, not which. Attribution assumes the queue ends
jobs in enqueue order (arq takes jobs oldest first; the grace absorbs concurrency
and retries): by time T the first ``completed(T) + failed(T)`` jobs have ended, so
of the window's jobs numbered ``E(start)+1 .. E(end)``, ``clamp(ended(T) - E(start))``
ended. Every failure between the window's start and T is charged to the window,
so the rate is, if anything, low. The interval is Clopper-Pearson on that count
(jobs as independent trials).
"""

from __future__ import annotations

import json

import pandas as pd
from scipy.stats import binomtest

QUEUES = ("batches", "payouts")
"""The jobs the seed's criterion is about (payment retries are a phase3 fallback)."""
GRACE_S = 120.0
"""Outcome read this long after a job is enqueued: the seed's 60 s payout delay
(§4.3) plus 60 s to run; the seed's own bound (P95 < 5 min) would cut most runs."""
METRIC = "marketplace_queue_jobs_{}_total"


def _series(samples: pd.DataFrame, outcome: str, queue: str) -> pd.DataFrame:
    sel = (samples["source"] == "service") & (samples["metric"] == METRIC.format(outcome))
    rows = samples.loc[sel, ["ts_us", "value", "labels"]]
    keep = [json.loads(str(lab) or "{}").get("queue") == queue for lab in rows["labels"]]
    return rows.loc[keep].sort_values("ts_us")


def _at(series: pd.DataFrame, ts_us: int) -> float:
    """The counter's value at ``ts_us``: the last sample at or before it (else the first)."""
    before = series[series["ts_us"] <= ts_us]
    row = before.iloc[-1] if not before.empty else series.iloc[0]
    return float(row["value"])


def _queue_counts(
    samples: pd.DataFrame, queue: str, start_us: int, end_us: int, outcome_us: int
) -> tuple[int, int, int, int] | None:
    """(enqueued in window, of those completed, failures charged, ended) for one queue."""
    enq = _series(samples, "enqueued", queue)
    done = _series(samples, "completed", queue)
    failed = _series(samples, "failed", queue)
    if enq.empty or done.empty:
        return None
    fail0 = _at(failed, start_us) if not failed.empty else 0.0
    fail_t = _at(failed, outcome_us) if not failed.empty else 0.0
    before = _at(enq, start_us)
    window = max(0, int(_at(enq, end_us) - before))
    ended = _at(done, outcome_us) + fail_t
    ended_in_window = int(min(max(ended - before, 0.0), window))
    charged = int(min(max(fail_t - fail0, 0.0), ended_in_window))
    return window, ended_in_window - charged, charged, ended_in_window


def job_completion(
    run: object, start_us: int, end_us: int, grace_s: float = GRACE_S
) -> tuple[float | None, tuple[float, float] | None, str]:
    """Share of the batch and payout jobs enqueued in [start_us, end_us) that completed.

    Returns ``(rate, (low, high) 95 % interval, detail)``; ``rate`` is None when the
    window cannot be decided (no queue counters sampled, no job enqueued, or jobs of
    the window still pending when the samples end before the grace is over).
    """
    samples: pd.DataFrame = run.samples  # type: ignore[attr-defined]
    if samples.empty or not (samples["metric"] == METRIC.format("enqueued")).any():
        return None, None, "queue counters (marketplace_queue_jobs_*) not sampled"
    grace_us = int(grace_s * 1e6)
    last_us = int(samples.loc[samples["source"] == "service", "ts_us"].max())
    outcome_us = min(end_us + grace_us, last_us)
    parts, total, completed, charged, ended = [], 0, 0, 0, 0
    for queue in QUEUES:
        counts = _queue_counts(samples, queue, start_us, end_us, outcome_us)
        if counts is None:
            continue
        n, ok, failed, done = counts
        total, completed, charged, ended = total + n, completed + ok, charged + failed, ended + done
        parts.append(f"{queue} {ok}/{n}")
    if total == 0:
        return None, None, "no batch or payout job was enqueued in the window"
    pending = total - ended
    if pending and outcome_us < end_us + grace_us:
        return (
            None,
            None,
            f"{pending} of {total} jobs still pending when the samples ended"
            f" {(last_us - end_us) / 1e6:.0f} s after the window (grace {grace_s:.0f} s);"
            f" completed so far {completed}/{total} ({', '.join(parts)})",
        )
    rate = completed / total
    ci = binomtest(completed, total).proportion_ci(confidence_level=0.95, method="exact")
    detail = (
        f"{completed} of {total} jobs enqueued in the window completed within"
        f" {grace_s:.0f} s ({', '.join(parts)}; {charged} failed, {pending} never ended)"
    )
    return rate, (float(ci.low), float(ci.high)), detail
