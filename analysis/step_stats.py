"""What each steady-state step measured: latency percentiles with their dependence-aware
intervals (and the open model's corrected latency from the intended start), throughput,
errors by class with their interval, resource means per source, and the whole-run table
per route.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.intervals import (
    RatioInterval,
    mean_rate_interval,
    per_second,
    ratio_interval,
    second_index,
    steady_seconds,
)
from analysis.percentiles import (
    PERCENTILES,
    log_latency,
    max_ms,
    quantiles_with_ci,
)
from analysis.runs import ERROR_CLASSES, Run
from analysis.steps import EndpointStats, LatencyStats, Step, StepStats, assign_steps


def latency_stats(
    values_us: np.ndarray,
    seconds: tuple[np.ndarray, int] | None = None,
    logs: np.ndarray | None = None,
) -> LatencyStats:
    """Latency summary; ``seconds`` (second of each record, window seconds) makes the
    percentile intervals dependence-aware.  ``logs``: see ``quantiles_with_ci``."""
    return LatencyStats(
        n=int(values_us.size),
        percentiles=quantiles_with_ci(values_us, PERCENTILES, seconds=seconds, logs=logs),
        max_ms=max_ms(values_us),
        mean_ms=float(values_us.mean()) / 1000.0 if values_us.size else None,
    )


def hdr_corrected(
    values_us: np.ndarray, interval_us: float, max_extra_factor: int = 20
) -> np.ndarray | None:
    """Coordinated-omission correction as HdrHistogram's recordValueWithExpectedInterval.

    In a closed model a stalled request also delays the requests its user would have sent
    meanwhile; they are back-filled as L - I, L - 2I, ... while >= I.  Hand-written and
    vectorised because HdrHistogram's Python port records values one by one.  Returns
    None when the back-fill would exceed ``max_extra_factor`` x the sample (a stall so
    long that the corrected distribution is meaningless).
    """
    if interval_us <= 0:
        return values_us
    long = values_us[values_us > interval_us]
    if not long.size:
        return values_us
    k = ((long - int(interval_us)) // int(interval_us)).astype(np.int64)
    total = int(k.sum())
    if total > max_extra_factor * values_us.size:
        return None
    base = np.repeat(long, k)
    starts = np.cumsum(k) - k
    steps = np.arange(total, dtype=np.int64) - np.repeat(starts, k) + 1
    extra = base - steps * int(interval_us)
    return np.concatenate([values_us, extra])


def _throughput(sec: np.ndarray, n_sec: int, step: Step) -> tuple[float, tuple[float, float]]:
    """Requests/s over the window, with a batch-means interval over time."""
    rate = sec.size / step.duration_s if step.duration_s > 0 else 0.0
    if not sec.size:
        return rate, (0.0, 0.0)
    mean, lo, hi = mean_rate_interval(per_second(sec, n_sec))
    scale = rate / mean if mean > 0 else 1.0  # per-second bins vs the exact duration
    return rate, (lo * scale, hi * scale)


def _error_interval(
    sec: np.ndarray, n_sec: int, is_err: np.ndarray
) -> tuple[tuple[float, float], str]:
    """Error-rate interval from per-second error counts (bursts widen it)."""
    ri = ratio_interval(per_second(sec[is_err], n_sec), per_second(sec, n_sec))
    if not ri.ok:
        return (0.0, 1.0), ri.reason or "insufficient data"
    return (ri.low, ri.high), _note(ri)


def _note(ri: RatioInterval) -> str:
    b = ri.batching
    return (
        f"batch means: {b.batches} batches of {b.batch_s:.1f} s (memory ~{b.tau_s:.1f} s), "
        f"design effect {ri.design_effect:.1f}, effective n {ri.n_eff:.0f} of {ri.n}"
    )


def _latency_notes(lat: LatencyStats) -> dict[str, str]:
    notes = {}
    for p, q in lat.percentiles.items():
        key = f"p{round(p * 100)}_ms"
        notes[key] = (
            q.reason
            if not q.has_interval
            else (
                f"batch means over time: design effect {q.design_effect:.1f}, "
                f"effective n {q.n_eff:.0f} of {q.n}"
            )
        )
    return notes


def step_resources(samples: pd.DataFrame, step: Step) -> dict[str, dict[str, float]]:
    """Mean of every (source, metric) sample inside the step window."""
    if samples.empty:
        return {}
    win = samples[(samples["ts_us"] >= step.start_us) & (samples["ts_us"] < step.end_us)]
    out: dict[str, dict[str, float]] = {}
    for (source, metric), value in (
        win.groupby(["source", "metric"], observed=True)["value"].mean().items()
    ):
        out.setdefault(str(source), {})[str(metric)] = float(value)
    return out


def compute_step_stats(
    run: Run, steps: list[Step], step_of: np.ndarray | None = None
) -> list[StepStats]:
    """Per-step and per-(step, endpoint) statistics from one grouping sort.

    ``step_of``: ``assign_steps(run.events.ts_us, steps)`` when the caller already has it
    (one pass over the records fewer)."""
    ev = run.events
    if step_of is None:
        step_of = assign_steps(ev.ts_us, steps)
    inside = np.flatnonzero(step_of >= 0)
    n_ep = max(len(ev.endpoint.categories), 1)
    key = step_of[inside].astype(np.int64) * n_ep + ev.endpoint.codes[inside]
    key_dtype = np.uint16 if len(steps) * n_ep < 2**16 else np.int64
    order = inside[np.argsort(key.astype(key_dtype), kind="stable")]  # radix sort on uint16
    counts = np.bincount(key, minlength=len(steps) * n_ep).reshape(len(steps), n_ep)
    lat = ev.latency_us[order]
    # only the open model's correction reads the intended-start latency
    intended = ev.intended_latency_us[order] if run.model == "open" else None
    ts = ev.ts_us[order]
    err_codes = ev.error_class.codes[order]
    users = ev.users[order]
    logs = log_latency(lat)  # once; every step and (step, endpoint) slices it
    n_cls = max(len(ev.error_class.categories), 1)
    class_code = {c: ev.error_class.code_of(c) for c in ERROR_CLASSES}
    err_cats = np.array([c not in ("", "none", "ok") for c in ev.error_class.categories] or [False])
    is_err = err_cats[err_codes] if err_codes.size else np.zeros(0, dtype=bool)
    think_mean = sum(run.think_time_s) / 2.0  # fallback cycle when a step has no records

    out = []
    offsets = np.concatenate([[0], np.cumsum(counts.ravel())])
    for s, step in enumerate(steps):
        a, b = int(offsets[s * n_ep]), int(offsets[(s + 1) * n_ep])
        sl = slice(a, b)
        n = b - a
        sec, n_sec = second_index(ts[sl], step.start_us, step.end_us)  # this step only
        rate, rate_ci = _throughput(sec, n_sec, step)
        class_counts = np.bincount(err_codes[sl], minlength=n_cls)  # one pass, all classes
        by_class = {
            c: int(class_counts[code]) if code >= 0 else 0 for c, code in class_code.items()
        }
        n_err = int(np.count_nonzero(is_err[sl]))
        users_observed = float(np.median(users[sl])) if n else 0.0
        cycle_s = (users_observed / rate) if rate > 0 and n else think_mean
        corrected, note, source = _corrected(
            run, lat[sl], None if intended is None else intended[sl], cycle_s
        )
        endpoints = []
        for e in range(n_ep):
            ea, eb = int(offsets[s * n_ep + e]), int(offsets[s * n_ep + e + 1])
            if eb == ea:
                continue
            endpoints.append(
                EndpointStats(
                    endpoint=ev.endpoint.categories[e],
                    n=eb - ea,
                    throughput_rps=(eb - ea) / step.duration_s,
                    error_rate=float(np.count_nonzero(is_err[ea:eb])) / (eb - ea),
                    latency=latency_stats(lat[ea:eb], (sec[ea - a : eb - a], n_sec), logs[ea:eb]),
                )
            )
        err_ci, err_note = _error_interval(sec, n_sec, is_err[sl])
        latency = latency_stats(lat[sl], (sec, n_sec), logs[sl])
        out.append(
            StepStats(
                step=step,
                n=n,
                users_observed=users_observed,
                throughput_rps=rate,
                throughput_ci=rate_ci,
                latency=latency,
                corrected_latency=(
                    None if corrected is None else latency_stats(corrected, (sec[source], n_sec))
                ),
                correction_note=note,
                error_rate=n_err / n if n else 0.0,
                error_rate_ci=err_ci,
                errors_by_class=by_class,
                endpoints=endpoints,
                resources=step_resources(run.samples, step),
                interval_notes={"error_rate": err_note, **_latency_notes(latency)},
            )
        )
    return out


def _corrected(
    run: Run, lat: np.ndarray, intended: np.ndarray | None, cycle_s: float
) -> tuple[np.ndarray | None, str, np.ndarray]:
    """Open model: latency from intended start.  Closed model: HdrHistogram back-fill.

    The expected interval between one user's requests is its cycle time users / X
    (Little's law: response time plus think time), measured per step.  Also returns,
    for every corrected value, the index of the record it came from (back-filled values
    share their stalled record's time), so intervals can batch them over time.
    """
    identity = np.arange(lat.size)
    if lat.size == 0:
        return None, "no records", identity
    if run.model == "open":
        return intended, "open model: latency measured from the intended start time", identity
    interval = cycle_s * 1e6
    corrected = hdr_corrected(lat, interval)
    if corrected is None:
        return (
            None,
            "generator stalled too long to correct (back-fill > 20x the sample)",
            identity,
        )
    return (
        corrected,
        (
            f"closed model: HdrHistogram-style back-fill with expected interval "
            f"{interval / 1000:.0f} ms (users / throughput)"
        ),
        _backfill_source(lat, interval),
    )


def _backfill_source(values_us: np.ndarray, interval_us: float) -> np.ndarray:
    """Record index of every value ``hdr_corrected`` returns, in the same order."""
    identity = np.arange(values_us.size)
    if interval_us <= 0:
        return identity
    long = np.flatnonzero(values_us > interval_us)
    k = ((values_us[long] - int(interval_us)) // int(interval_us)).astype(np.int64)
    return np.concatenate([identity, np.repeat(long, k)])


@dataclass
class RouteTable:
    """Per-route statistics pooled over a set of windows, and which windows those are."""

    windows: list[tuple[int, int]]  # absolute µs [start, end) of every window pooled
    covered_s: float  # total seconds of those windows
    description: str  # e.g. "steady-state windows of 6 steps (150 s of 240 s of load)"
    endpoints: list[EndpointStats]


def route_table(run: Run, steps: list[Step], step_of: np.ndarray | None = None) -> RouteTable:
    """Whole-run per-route table over the steady-state windows only (the default).

    Ramps are left out on purpose: while users spawn, the generator's own spawning stalls
    show up as latency that is not the service's, and warm-up mixes cold caches in.
    ``step_of``: as in ``compute_step_stats``.
    """
    ev = run.events
    if step_of is None:
        step_of = assign_steps(ev.ts_us, steps)
    inside = step_of >= 0
    covered = sum(s.duration_s for s in steps)
    stages = run.stages
    load_s = (max(s.end_s for s in stages) - min(s.start_s for s in stages)) if stages else 0.0
    description = (
        f"steady-state windows of {len(steps)} step(s) ({covered:,.0f} s of {load_s:,.0f} s "
        "of load; ramps and warm-up excluded)"
    )
    cats = ev.error_class.categories
    bad = np.array([c not in ("", "none", "ok") for c in cats] or [False])
    failed = bad[ev.error_class.codes] if len(ev) else np.zeros(0, dtype=bool)
    idx = np.flatnonzero(inside)
    codes = ev.endpoint.codes[idx]
    n_ep = len(ev.endpoint.categories)
    key_dtype = np.uint16 if n_ep < 2**16 else np.int64
    order = idx[np.argsort(codes.astype(key_dtype), kind="stable")]  # one radix sort
    offsets = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=n_ep))])
    lat, bad_sorted = ev.latency_us[order], failed[order]
    # Each record's second, counting only the steady seconds (the windows are not
    # contiguous): the intervals are dependence-aware, as in the step table.
    sec_all = steady_seconds(ev.ts_us[order])
    n_sec = int(sec_all.max()) + 1 if sec_all.size else 0
    endpoints = []
    for e, name in enumerate(ev.endpoint.categories):
        a, b = int(offsets[e]), int(offsets[e + 1])
        if a == b:
            continue
        endpoints.append(
            EndpointStats(
                endpoint=name,
                n=b - a,
                throughput_rps=(b - a) / covered if covered else 0.0,
                error_rate=float(bad_sorted[a:b].mean()),
                latency=latency_stats(lat[a:b], (sec_all[a:b], n_sec)),
            )
        )
    endpoints.sort(key=lambda x: -x.n)
    return RouteTable([(s.start_us, s.end_us) for s in steps], covered, description, endpoints)
