"""Where the system saturates: the knee of P95 vs load and the USL fit of throughput."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from kneed import KneeLocator

from analysis import usl
from analysis.steps import StepStats


@dataclass
class Knee:
    """Knee of P95 latency vs load (Kneedle); ``load`` None with ``reason`` when not found."""

    load: float | None
    p95_ms: float | None
    reason: str | None = None


def find_knee(steps: list[StepStats]) -> Knee:
    pts = sorted((st.load, st.latency.p(0.95).value_ms) for st in steps if st.latency.p(0.95).ok)
    loads = np.array([p[0] for p in pts], dtype=float)
    p95 = np.array([p[1] for p in pts], dtype=float)
    if len(np.unique(loads)) < 3:
        return Knee(
            None,
            None,
            f"only {len(np.unique(loads))} load level(s) with a P95; Kneedle needs at least 3",
        )
    kl = KneeLocator(
        loads, p95, curve="convex", direction="increasing", S=1.0, interp_method="interp1d"
    )
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
