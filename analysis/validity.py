"""Validity checks: can the run's numbers be trusted?  Each check is reported, pass or not.

- Little's law (closed model): users = X * (R + Z), so achieved throughput should be
  users / (mean response time + mean think time).  A large gap means users were not
  really active (generator starved, users stuck) or think time differs from config.
- Generator CPU saturation: a generator above 90% CPU delays sends and under-reports
  latency, so its numbers describe the generator, not the system.
- Coordinated omission: corrected latency (intended start in the open model, HdrHistogram
  back-fill in the closed model) beside the raw one; flagged when P99 moves > 20%
  (closed-model back-fill moves P99 by ~10% on ordinary lognormal tails with no stall).
- Offered vs achieved arrival rate (open model): an open-model run that could not send
  what it intended understates load.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.headroom import is_generator
from analysis.runs import Run
from analysis.steps import StepStats

LITTLE_TOLERANCE = 0.15
#: Below this many requests a step's throughput has a relative error > 10% (Poisson).
LITTLE_MIN_REQUESTS = 100
GENERATOR_CPU_LIMIT = 90.0
CO_TOLERANCE = 0.20
ARRIVAL_TOLERANCE = 0.01


@dataclass
class Check:
    """One validity check at one step (``step`` None for run-wide checks)."""

    name: str
    step: str | None
    ok: bool | None  # None: could not be evaluated
    observed: float | None
    expected: float | None
    detail: str


def littles_law(run: Run, st: StepStats) -> Check:
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
    users = st.users_observed or st.step.users
    if r_s + z_s <= 0 or users <= 0:
        return Check(
            "littles_law", st.step.name, None, st.throughput_rps, None, "no response or think time"
        )
    expected = users / (r_s + z_s)
    dev = abs(st.throughput_rps - expected) / expected
    return Check(
        "littles_law",
        st.step.name,
        dev <= LITTLE_TOLERANCE,
        st.throughput_rps,
        expected,
        f"achieved {st.throughput_rps:.1f} req/s vs users/(R+Z) = "
        f"{expected:.1f} req/s ({dev:.1%} apart, tolerance {LITTLE_TOLERANCE:.0%})",
    )


def generator_cpu(run: Run, st: StepStats) -> Check:
    """Generator CPU in psutil's convention (100 = one core): a Locust worker is one
    gevent loop, so 90% of one core is saturation whatever the host has."""
    values = [
        m.get("generator_cpu_percent", m.get("cpu_percent"))
        for src, m in st.resources.items()
        if is_generator(src)
    ]
    values = [v for v in values if v is not None]
    if not values:
        return Check(
            "generator_cpu",
            st.step.name,
            None,
            None,
            GENERATOR_CPU_LIMIT,
            "no generator CPU samples",
        )
    # Per-worker peaks matter more than the mean: one saturated worker stalls its users.
    peak = _peak(run, st, ("generator_cpu_percent", "cpu_percent"))
    worst = max(max(values), peak if peak is not None else 0.0)
    return Check(
        "generator_cpu",
        st.step.name,
        worst < GENERATOR_CPU_LIMIT,
        worst,
        GENERATOR_CPU_LIMIT,
        f"generator CPU up to {worst:.0f}% (limit {GENERATOR_CPU_LIMIT:.0f}%)",
    )


def _peak(run: Run, st: StepStats, metrics: tuple[str, ...]) -> float | None:
    s = run.samples
    if s.empty:
        return None
    gen = s["source"].isin([x for x in pd.unique(s["source"]) if is_generator(str(x))])
    win = s[
        (s["ts_us"] >= st.step.start_us)
        & (s["ts_us"] < st.step.end_us)
        & gen
        & (s["metric"].isin(metrics))
    ]
    if win.empty:
        return None
    # Smooth over 5 samples per series: a single 1 s spike is not saturation.
    by = win.groupby(["source", "labels"], observed=True)["value"]
    return float(by.apply(lambda v: v.rolling(5, min_periods=1).mean().max()).max())


def coordinated_omission(run: Run, st: StepStats) -> Check:
    raw = st.latency.p(0.99)
    if st.corrected_latency is None:
        return Check("coordinated_omission", st.step.name, False, None, None, st.correction_note)
    cor = st.corrected_latency.p(0.99)
    if not (raw.ok and cor.ok):
        return Check(
            "coordinated_omission", st.step.name, None, None, None, "insufficient data for P99"
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
        short <= ARRIVAL_TOLERANCE,
        achieved / dur,
        offered / dur,
        f"achieved {achieved / dur:.1f}/s of {offered / dur:.1f}/s offered "
        f"({short:.2%} short, {int(win['dropped'].sum())} dropped)",
    )


def run_checks(run: Run, steps: list[StepStats]) -> list[Check]:
    checks = []
    for st in steps:
        checks.extend(
            f(run, st) for f in (littles_law, generator_cpu, coordinated_omission, arrivals)
        )
    return checks
