"""Validity checks: can the run's numbers be trusted?  A failed deciding check at the
gate step makes the verdict INVALID (``analysis.gates``); every check is reported.

Deciding checks (bounds from the manifest's ``config.validity``, ``runformat.gate``):

- run completed: the manifest's status is ``completed`` (a killed, interrupted or
  timed-out run, or a missing status, did not run its load plan to the end);
- generator lag: each Locust worker's event-loop scheduling lag (sampled ten times a
  second by ``scenarios.generator_probe``); its P99 above the bound means sends and
  response reads were delayed by the generator itself;
- generator CPU: a worker is one gevent loop; above 90 % of one core it saturates;
- Little's law (closed model): users = X * (R + Z); a gap means users were not really
  active (generator starved, users stuck) or think time differs from config;
- offered vs achieved arrivals (open model): a run that could not send what it intended
  understates load;
- window coverage: the steady window must hold data over at least 90 % of its length
  (a stall, a crashed worker or a killed run leaves holes that bias every statistic);
  records a remote worker captured but never delivered over the record channel
  (``manifest.record_channel``, ``scenarios.record_channel``) count against it when
  the worker was last heard of inside the window.

Shown, not deciding: record delivery (per shipping worker: sent, acknowledged,
written and lost records), coordinated omission (a stalling *service* moves P99 too, which
is a finding, not a distortion) and whole-host CPU (a box running the stack and the
generator together says so beside the verdict).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.lost_data import channel_lost_in_window, channel_workers, lost_in_window, lost_text
from analysis.runs import Run
from analysis.steps import StepStats
from runformat.schemas import (
    GENERATOR_CPU_METRIC,
    GENERATOR_SOURCE,
    HOST_CPU_METRIC,
    HOST_SOURCE,
    LAG_METRIC,
    is_generator_worker_source,
)

#: Below this many requests a step's throughput has a relative error > 10% (Poisson).
LITTLE_MIN_REQUESTS = 100
GENERATOR_CPU_LIMIT = 90.0
CO_TOLERANCE = 0.20
HOST_CPU_HIGH = 85.0
#: Coverage bins hold at least this many expected records (P(empty | Poisson) < 1 %).
COVERAGE_RECORDS_PER_BIN = 5
MIN_LAG_SAMPLES = 50

ADVICE = {
    "generator_lag": "the load generator delayed its own requests: use fewer users per "
    "worker (more --workers), or run the generator on separate hardware (--target URL)",
    "generator_cpu": "a Locust worker saturated its core: use more --workers (fewer users "
    "each), or run the generator on separate hardware (--target URL)",
    "littles_law": "users were not active as configured (generator starved or users "
    "stuck): check generator lag and CPU, use more --workers",
    "offered_vs_achieved": "the open model could not send its arrivals: more --workers, "
    "or a generator on separate hardware (--target URL)",
    "window_coverage": "data is missing from the gate step's window (a stall, a crashed "
    "worker or a killed run): rerun, and check locust/*.log",
    "run_completed": "the run did not finish its load plan: rerun it to completion",
    "record_delivery": "a remote worker's records did not all reach the master (a killed "
    "worker or a lost connection): see locust/records.json and the worker's log",
    "host_cpu": "the stack and the generator share this host: run the generator with "
    "--target against a stack on separate hardware",
}


@dataclass
class Check:
    """One validity check at one step (``step`` None for run-wide checks)."""

    name: str
    step: str | None
    ok: bool | None  # None: could not be evaluated
    observed: float | None
    expected: float | None
    detail: str
    decides: bool = True  # a failure makes the verdict INVALID

    @property
    def advice(self) -> str:
        return ADVICE.get(self.name, "")


def run_completed(run: Run) -> Check:
    status = run.meta.status
    ok = status == "completed"
    why = f" ({run.meta.status_detail})" if run.meta.status_detail else ""
    return Check(
        "run_completed",
        None,
        ok,
        None,
        None,
        f"run status {status or 'missing'}{why}"
        + ("" if ok else ": the load plan did not run to its end (killed, interrupted, "
           "Locust failed); results cover only the data written"),
    )  # fmt: skip


def littles_law(run: Run, st: StepStats) -> Check:
    tolerance = run.validity.littles_law_tolerance
    if run.model != "closed":
        return Check(
            "littles_law",
            st.step.name,
            None,
            None,
            None,
            "open model: Little's law gives concurrency, not a check on throughput",
        )
    if st.n < LITTLE_MIN_REQUESTS:
        return Check(
            "littles_law",
            st.step.name,
            None,
            st.throughput_rps,
            None,
            f"only {st.n} requests (< {LITTLE_MIN_REQUESTS}): rates too noisy to check",
        )
    r_s = (st.latency.mean_ms or 0.0) / 1000.0
    z_s = sum(run.think_time_s) / 2.0
    # The operator's timed jobs run as one extra user outside the persona mix
    # (scenarios OperationsUser: a minute between rounds, not the mix's think time).
    fixed = 1 if run.manifest.get("config", {}).get("traffic") is not None else 0
    users = (st.users_observed or st.step.users) - fixed
    if r_s + z_s <= 0 or users <= 0:
        return Check(
            "littles_law", st.step.name, None, st.throughput_rps, None, "no response or think time"
        )
    expected = users / (r_s + z_s)
    dev = abs(st.throughput_rps - expected) / expected
    return Check(
        "littles_law",
        st.step.name,
        dev <= tolerance,
        st.throughput_rps,
        expected,
        f"achieved {st.throughput_rps:.1f} req/s vs users/(R+Z) = {users:.0f}/"
        f"({r_s:.2f}+{z_s:.2f}) s = "
        f"{expected:.1f} req/s ({dev:.1%} apart, tolerance {tolerance:.0%})",
    )


def _window(samples: pd.DataFrame, st: StepStats, source: str, metric: str) -> pd.DataFrame:
    if samples.empty:
        return samples
    return samples[
        (samples["ts_us"] >= st.step.start_us)
        & (samples["ts_us"] < st.step.end_us)
        & (samples["source"] == source)
        & (samples["metric"] == metric)
    ]


def _worker(labels: str) -> str:
    try:
        return str(json.loads(labels).get("worker", labels)) if labels else "?"
    except (json.JSONDecodeError, AttributeError):
        return labels


def generator_lag(run: Run, st: StepStats) -> Check:
    """Worst per-worker P99 of the event-loop lag inside the step's steady window."""
    bound = run.validity.generator_lag_p99_ms
    win = _window(run.samples, st, GENERATOR_SOURCE, LAG_METRIC)
    if win.empty:
        return Check(
            "generator_lag",
            st.step.name,
            None,
            None,
            bound,
            "no generator event-loop lag samples (workers without --loadgate-run-dir?)",
        )
    worst, who, n = -1.0, "", 0
    for labels, values in win.groupby("labels", observed=True)["value"]:
        if values.size < MIN_LAG_SAMPLES:
            continue
        p99 = float(np.percentile(values.to_numpy(), 99, method="inverted_cdf"))
        if p99 > worst:
            worst, who, n = p99, _worker(str(labels)), int(values.size)
    if worst < 0:
        return Check(
            "generator_lag", st.step.name, None, None, bound, "too few lag samples in the window"
        )
    return Check(
        "generator_lag",
        st.step.name,
        worst <= bound,
        worst,
        bound,
        f"event-loop lag P99 {worst:.1f} ms on worker {who} ({n} samples; bound {bound:g} ms)",
    )


def generator_cpu(run: Run, st: StepStats) -> Check:
    """Generator CPU in psutil's convention (100 = one core): a Locust worker is one
    gevent loop, so 90% of one core is saturation whatever the host has."""
    peak = _peak(run, st, (GENERATOR_CPU_METRIC,))
    if peak is None:
        return Check(
            "generator_cpu",
            st.step.name,
            None,
            None,
            GENERATOR_CPU_LIMIT,
            "no generator CPU samples",
        )
    return Check(
        "generator_cpu",
        st.step.name,
        peak < GENERATOR_CPU_LIMIT,
        peak,
        GENERATOR_CPU_LIMIT,
        f"generator CPU up to {peak:.0f}% of a core (limit {GENERATOR_CPU_LIMIT:.0f}%)",
    )


def _peak(run: Run, st: StepStats, metrics: tuple[str, ...]) -> float | None:
    s = run.samples
    if s.empty:
        return None
    workers = [x for x in pd.unique(s["source"]) if is_generator_worker_source(str(x))]
    win = s[
        (s["ts_us"] >= st.step.start_us)
        & (s["ts_us"] < st.step.end_us)
        & s["source"].isin(workers)
        & (s["metric"].isin(metrics))
    ]
    if win.empty:
        return None
    # Smooth over 5 samples per series: a single 1 s spike is not saturation.
    by = win.groupby(["source", "labels"], observed=True)["value"]
    return float(by.apply(lambda v: v.rolling(5, min_periods=1).mean().max()).max())


def host_cpu(run: Run, st: StepStats) -> Check:
    """Whole-host CPU (100 = every core): shown beside the verdict, not deciding."""
    win = _window(run.samples, st, HOST_SOURCE, HOST_CPU_METRIC)
    if win.empty:
        return Check(
            "host_cpu", st.step.name, None, None, HOST_CPU_HIGH, "host CPU not sampled", False
        )
    mean, peak = float(win["value"].mean()), float(win["value"].max())
    cpus = run.meta.host.get("cpus")
    return Check(
        "host_cpu",
        st.step.name,
        mean < HOST_CPU_HIGH,
        mean,
        HOST_CPU_HIGH,
        f"whole host {mean:.0f}% busy on average, {peak:.0f}% at peak"
        + (f" of {cpus} cores" if cpus else "")
        + " (stack and generator on one machine measure each other)",
        False,
    )


def coordinated_omission(run: Run, st: StepStats) -> Check:
    raw = st.latency.p(0.99)
    if st.corrected_latency is None:
        return Check(
            "coordinated_omission", st.step.name, False, None, None, st.correction_note, False
        )
    cor = st.corrected_latency.p(0.99)
    if not (raw.ok and cor.ok):
        return Check(
            "coordinated_omission",
            st.step.name,
            None,
            None,
            None,
            "insufficient data for P99",
            False,
        )
    ratio = cor.value_ms / raw.value_ms if raw.value_ms else 1.0
    return Check(
        "coordinated_omission",
        st.step.name,
        ratio - 1 <= CO_TOLERANCE,
        cor.value_ms,
        raw.value_ms,
        f"P99 raw {raw.value_ms:.1f} ms, corrected {cor.value_ms:.1f} ms "
        f"({ratio - 1:+.1%}); {st.correction_note}",
        False,
    )


def arrivals(run: Run, st: StepStats) -> Check:
    if run.model != "open":
        return Check(
            "offered_vs_achieved", st.step.name, None, None, None, "closed model: no offered rate"
        )
    a = run.arrivals
    if a is None or a.empty:
        return Check("offered_vs_achieved", st.step.name, None, None, None, "no arrivals records")
    win = a[(a["ts_us"] >= st.step.start_us) & (a["ts_us"] < st.step.end_us)]
    offered, achieved = float(win["offered"].sum()), float(win["achieved"].sum())
    if offered <= 0:
        return Check(
            "offered_vs_achieved",
            st.step.name,
            None,
            achieved,
            offered,
            "nothing offered in window",
        )
    short = 1 - achieved / offered
    dur = st.step.duration_s
    return Check(
        "offered_vs_achieved",
        st.step.name,
        short <= run.validity.arrival_shortfall,
        achieved / dur,
        offered / dur,
        f"achieved {achieved / dur:.1f}/s of {offered / dur:.1f}/s offered "
        f"({short:.2%} short, {int(win['dropped'].sum())} dropped)",
    )


def window_coverage(run: Run, st: StepStats) -> Check:
    """Share of the steady window's time bins that hold at least one request record.

    Bins are sized to hold ``COVERAGE_RECORDS_PER_BIN`` records at the step's mean rate
    (at least 1 s), so an ordinary quiet second of a Poisson stream is not a hole.
    """
    need = run.validity.min_window_coverage
    dur = st.step.duration_s
    if dur <= 0:
        return Check("window_coverage", st.step.name, None, None, need, "empty window")
    ts = run.events.ts_us
    inside = ts[(ts >= st.step.start_us) & (ts < st.step.end_us)]
    if inside.size == 0:
        return Check("window_coverage", st.step.name, False, 0.0, need, "no requests recorded")
    bin_s = max(1.0, COVERAGE_RECORDS_PER_BIN * dur / inside.size)
    bins = max(1, math.floor(dur / bin_s))
    idx = ((inside - st.step.start_us) / (bin_s * 1e6)).astype(np.int64)
    # occupied bins by a bincount (O(n)), not np.unique (a sort of the window's records)
    occupied = np.bincount(idx[idx < bins], minlength=bins)[:bins] > 0
    # A bin an unreadable events file may cover is missing data, whatever else it holds.
    lost = lost_in_window(run, st.step.start_us, st.step.end_us)
    edges = st.step.start_us + (np.arange(bins + 1) * bin_s * 1e6).astype(np.int64)
    for _, (a, b) in lost:
        occupied &= ~((edges[1:] > a) & (edges[:-1] < b))
    covered = int(np.count_nonzero(occupied)) / bins
    why = ""
    if lost:
        why = f"; {lost_text(lost, run.start_us)}, counted as holes"
    # Records a remote worker captured but never delivered (killed mid-run) are missing too.
    undelivered = channel_lost_in_window(run, st.step.start_us, st.step.end_us)
    if undelivered:
        covered *= inside.size / (inside.size + undelivered)
        why += f"; less {undelivered:,} records lost by workers that stopped in it"
    return Check(
        "window_coverage",
        st.step.name,
        covered >= need,
        covered,
        need,
        f"{covered:.0%} of the {dur:.0f} s steady window holds requests "
        f"({bins} bins of {bin_s:.1f} s; need {need:.0%}){why}",
    )


def record_delivery(run: Run) -> Check | None:
    """Per shipping worker: request records sent, acknowledged, written and lost."""
    workers = channel_workers(run)
    if not workers:
        return None
    parts, lost_total, total = [], 0, 0
    for name, account in workers.items():
        ev = account.get("streams", {}).get("events", {})
        lost_total += int(ev.get("lost", 0))
        total += int(ev.get("captured", 0))
        parts.append(
            f"{name}: sent {ev.get('sent', 0):,}, acked {ev.get('acked', 0):,}, "
            f"written {ev.get('written', 0):,}, lost {ev.get('lost', 0):,}"
            + ("" if account.get("finished") else " (stopped before the end)")
        )
    return Check(
        "record_delivery",
        None,
        lost_total == 0,
        float(lost_total),
        0.0,
        f"{lost_total:,} of {total:,} request records lost over the record channel; "
        + "; ".join(parts),
        decides=False,
    )


STEP_CHECKS = (
    littles_law,
    generator_lag,
    generator_cpu,
    window_coverage,
    arrivals,
    coordinated_omission,
    host_cpu,
)


def run_checks(run: Run, steps: list[StepStats]) -> list[Check]:
    checks = [run_completed(run)]
    delivery = record_delivery(run)
    if delivery is not None:
        checks.append(delivery)
    for st in steps:
        checks.extend(f(run, st) for f in STEP_CHECKS)
    return checks
