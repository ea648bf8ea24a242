"""Where the system saturates: the knee of P95 vs load and the USL fit of throughput."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from kneed import KneeLocator

from analysis import usl
from analysis.steps import StepStats

#: The rising part of the curve ends where P95 first reaches this fraction of its maximum.
PLATEAU_FRACTION = 0.9
#: P95 must at least double over the rising part for a knee to mean anything.
MIN_RISE = 2.0


@dataclass
class Knee:
    """Knee of P95 latency vs load; ``load`` None with ``reason`` when not found."""

    load: float | None
    p95_ms: float | None
    reason: str | None = None


def find_knee(steps: list[StepStats]) -> Knee:
    """Where P95 departs from its low-load trend (Kneedle on the rising part of the curve).

    Kneedle assumes a convex curve.  Under overload P95 usually stops rising (requests
    time out, errors are fast), so the whole curve is S-shaped and Kneedle on all of it
    puts the "knee" at the end of the plateau: on steps of 33, 72, 337, 2,618, 2,353 and
    2,637 ms it answered 1,500 users although P95 jumped tenfold between 750 and 1,000.
    The curve is therefore cut where P95 first reaches 90% of its maximum, and the knee
    looked for on what rises up to there.
    """
    pts = sorted((st.load, st.latency.p(0.95).value_ms) for st in steps if st.latency.p(0.95).ok)
    loads = np.array([p[0] for p in pts], dtype=float)
    p95 = np.array([p[1] for p in pts], dtype=float)
    if len(np.unique(loads)) < 3:
        return Knee(
            None,
            None,
            f"only {len(np.unique(loads))} load level(s) with a P95; a knee needs at least 3",
        )
    end = int(np.flatnonzero(p95 >= PLATEAU_FRACTION * p95.max())[0])
    if p95[end] < MIN_RISE * p95[0]:
        return Knee(None, None, "no knee: P95 stays within 2x its low-load value")
    if end < 2:
        return Knee(
            None,
            None,
            f"no knee within the measured range: P95 was already near its maximum at "
            f"{loads[end]:,.0f}",
        )
    x, y = loads[: end + 1], p95[: end + 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kl = KneeLocator(x, y, curve="convex", direction="increasing", S=1.0)
    if kl.knee is None:
        return Knee(None, None, "no knee: P95 grows without a distinct bend in the measured range")
    i = int(np.argmin(np.abs(loads - kl.knee)))
    return Knee(float(kl.knee), float(p95[i]))


def concurrency_and_throughput(steps: list[StepStats], model: str) -> tuple[np.ndarray, np.ndarray]:
    """Concurrency per step: users (closed model) or X * R by Little's law (open model)."""
    n, x = [], []
    for st in steps:
        if st.n == 0:
            continue
        if model == "open":
            conc = st.throughput_rps * (st.latency.mean_ms or 0.0) / 1000.0
        else:
            conc = st.users_observed or st.step.users
        n.append(conc)
        x.append(st.throughput_rps)
    return np.array(n, dtype=float), np.array(x, dtype=float)


def fit_usl(steps: list[StepStats], model: str) -> usl.USLFit:
    n, x = concurrency_and_throughput(steps, model)
    return usl.fit(n, x)
