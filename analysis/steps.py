"""Load steps in steady state and their statistics.

A step is a ``hold`` stage of the manifest minus its warm-up.  Ramps and warm-up are
excluded because latencies there mix two load levels (and cold caches), which biases
every per-load number the saturation models are fitted to.

All per-step and per-(step, endpoint) groups come from a single sort of a small
integer key, so the cost is one O(n) radix sort plus one ``np.partition`` per group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analysis.percentiles import (
    QuantileEstimate,
    log_latency,
)
from analysis.runs import Run

#: MSER-5 (White 1997): the truncation point minimises the marginal standard error of
#: batch means of 5 observations; here batches of 5 seconds of a hold's per-second
#: latency (docs/statistics.md "Steady state: MSER-5 truncation").
MSER_BATCH_S = 5
#: MSER may cut at most this share of a hold: its statistic is unreliable where few
#: batches remain (White, Cobb & Spratt 2000 ignore minima in the second half).
MSER_MAX_FRACTION = 0.5


@dataclass
class Step:
    """Steady-state window of one hold stage."""

    index: int
    name: str
    users: int  # configured users (closed model)
    rate: float | None  # configured arrivals/s (open model)
    start_us: int
    end_us: int
    #: Seconds cut from the start of the hold (the larger of MSER-5 and the configured
    #: minimum warm-up) and how that was decided, for the report.
    truncated_s: float = 0.0
    truncation: str = ""

    @property
    def duration_s(self) -> float:
        return (self.end_us - self.start_us) / 1e6


@dataclass
class LatencyStats:
    """Latency of one group of records; milliseconds."""

    n: int
    percentiles: dict[float, QuantileEstimate]
    max_ms: float | None
    mean_ms: float | None

    def p(self, q: float) -> QuantileEstimate:
        return self.percentiles[q]


@dataclass
class EndpointStats:
    endpoint: str
    n: int
    throughput_rps: float
    error_rate: float
    latency: LatencyStats


@dataclass
class StepStats:
    """Everything measured in one step's steady-state window."""

    step: Step
    n: int
    users_observed: float  # median of the ``users`` column: the load really applied
    throughput_rps: float
    throughput_ci: tuple[float, float]
    latency: LatencyStats
    corrected_latency: LatencyStats | None  # coordinated-omission corrected
    correction_note: str
    error_rate: float
    #: Dependence-aware (batch means over time, analysis.intervals); (0, 1) when the
    #: window is too short for the errors' memory (see ``interval_notes``).
    error_rate_ci: tuple[float, float]
    errors_by_class: dict[str, int]
    endpoints: list[EndpointStats]
    resources: dict[str, dict[str, float]] = field(default_factory=dict)  # source -> metric -> mean
    #: How the intervals were built, per statistic ("error_rate", "p95_ms", ...): the
    #: effective sample size and batches, or why there is no interval.
    interval_notes: dict[str, str] = field(default_factory=dict)

    @property
    def load(self) -> float:
        """Load level: users in the closed model, offered rate in the open model."""
        return float(self.step.rate) if self.step.rate is not None else float(self.step.users)


def mser_truncation(sums: np.ndarray, counts: np.ndarray, max_fraction: float = MSER_MAX_FRACTION
                    ) -> tuple[int, bool]:  # fmt: skip
    """MSER-5 truncation (in batches) of a series given as per-batch sums and counts.

    MSER(d) = sum_{i > d} (Y_i - mean(Y_{d:}))^2 / (k - d)^2 over the batch means Y that
    hold records; d is the minimiser over 0 <= d <= max_fraction * k.  Returns
    (d in batches of the input, whether d hit the bound: no steady state found inside
    the allowed cut).  Hand-written: ~15 lines of cumulative sums, no library has it.
    """
    full = np.flatnonzero(counts > 0)
    k = full.size
    if k < 4:
        return 0, False
    y = sums[full] / counts[full]
    # suffix sums: mean and sum of squares of y[d:] for every d in O(k)
    s1 = np.cumsum(y[::-1])[::-1]
    s2 = np.cumsum((y * y)[::-1])[::-1]
    m = np.arange(k, 0, -1, dtype=float)
    sse = np.maximum(s2 - s1 * s1 / m, 0.0)
    top = int(math.floor(max_fraction * k))
    stat = sse[: top + 1] / m[: top + 1] ** 2
    d = int(np.argmin(stat))
    return int(full[d]) if d < k else 0, d == top and top > 0


def _per_run_second(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Per second since the load start: sum of log-latency and record count (O(n))."""
    ev = run.events
    if len(ev) == 0:
        return np.zeros(0), np.zeros(0)
    lat = ev.intended_latency_us if run.model == "open" else ev.latency_us
    sec = (ev.ts_us - run.start_us) // 1_000_000
    keep = sec >= 0
    sec = sec[keep]
    sums = np.bincount(sec, weights=log_latency(lat[keep]))
    return sums, np.bincount(sec, minlength=sums.size).astype(float)


def _truncate(sums: np.ndarray, counts: np.ndarray, start_s: float, end_s: float,
              floor_s: float) -> tuple[float, str]:  # fmt: skip
    """Seconds to cut from a hold [start_s, end_s): MSER-5 on its per-second mean
    log-latency, at least ``floor_s`` (the configured minimum warm-up)."""
    a, b = math.ceil(start_s), min(int(end_s), sums.size)
    if b - a < 4 * MSER_BATCH_S:
        return floor_s, f"{floor_s:g} s configured warm-up (hold too short for MSER-5)"
    n_b = (b - a) // MSER_BATCH_S
    cut = slice(a, a + n_b * MSER_BATCH_S)
    bs = sums[cut].reshape(n_b, MSER_BATCH_S).sum(axis=1)
    bc = counts[cut].reshape(n_b, MSER_BATCH_S).sum(axis=1)
    d, at_bound = mser_truncation(bs, bc)
    mser_s = (a - start_s) + d * MSER_BATCH_S
    how = f"MSER-5 {mser_s:g} s"
    if at_bound:
        how += f" (at its bound, {MSER_MAX_FRACTION:.0%} of the hold: no steady state found)"
    if floor_s > mser_s:
        return floor_s, f"{floor_s:g} s configured minimum warm-up ({how})"
    return mser_s, how


def build_steps(run: Run, until_us: int | None = None) -> list[Step]:
    """Hold stages minus their warm-up, as absolute µs windows.

    The warm-up of each hold is found, not assumed: MSER-5 on the hold's per-second mean
    log-latency (``mser_truncation``), bounded by ``MSER_MAX_FRACTION`` of the hold and
    never below the configured ``warmup_s`` (stage, else config; default 0).

    ``until_us``: analyse a run still going (holding a gate step until it is decided):
    every window ends there at the latest, holds not yet reached are left out, and the
    truncation bound is half of the part of the hold already run.
    """
    start = run.start_us
    until_s = None if until_us is None else (until_us - start) / 1e6
    warmup_cfg = run.config.get("warmup_s")
    sums, counts = _per_run_second(run)
    steps = []
    for stage in run.stages:
        if stage.kind != "hold":
            continue
        end_s = stage.end_s if until_s is None else min(stage.end_s, until_s)
        dur = end_s - stage.start_s
        if stage.warmup_s is not None:
            floor = stage.warmup_s
        elif warmup_cfg is not None:
            floor = float(warmup_cfg)
        else:
            floor = 0.0
        warm, how = _truncate(sums, counts, stage.start_s, end_s, floor)
        if dur - warm <= 0:
            continue
        steps.append(
            Step(
                index=len(steps),
                name=stage.name,
                users=stage.users,
                rate=stage.rate,
                start_us=start + int((stage.start_s + warm) * 1e6),
                end_us=start + int(end_s * 1e6),
                truncated_s=warm,
                truncation=how,
            )
        )
    return steps


def assign_steps(ts_us: np.ndarray, steps: list[Step]) -> np.ndarray:
    """Step index of every record, -1 outside steady state (ramps, warm-up, gaps)."""
    edges = np.array([t for s in steps for t in (s.start_us, s.end_us)], dtype=np.int64)
    if not edges.size:
        return np.full(ts_us.shape, -1, dtype=np.int32)
    pos = np.searchsorted(edges, ts_us, side="right")
    # One gather from a table of len(edges) + 1 entries: odd positions are inside step
    # (pos - 1) // 2, even ones between steps (fewer passes over the records).
    table = np.arange(edges.size + 1, dtype=np.int32)
    table = np.where(table % 2 == 1, (table - 1) // 2, -1).astype(np.int32)
    return table[pos]
