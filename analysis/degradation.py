"""Graceful degradation under injected faults, measured per fault (seed §5.5).

The seed's phase 3 promises "graceful degradation during external API failures": circuit
breakers that open, fallbacks that answer (payments deferred, haversine batching), "<1 %
order failure rate (vs 100 % cascade failure)" and "auto-recovery within 1 minute of API
restoration". A run that injected faults (``faults.jsonl``, ``loadgate.faults``) is
measured against that, fault by fault:

- **time to detect**: from the fault's start to the first 1 Hz sample of the service's
  ``marketplace_circuit_breaker_state`` showing the guarding breaker open (Stripe, OSRM,
  Redis); faults on services no breaker guards have no detection to measure;
- **catalogue and cart during the fault** (``GET /products...``, ``/farms``, ``/cart``):
  error rate (Wilson interval) and P95 (dependence-aware interval, as everywhere);
- **checkouts during the fault and its recovery**: the outcome mix (paid, deferred
  ``payment_pending``, declined, failed) and the order failure rate (failed checkouts /
  checkouts), with how delivery batches were routed (``marketplace_batch_routing_total``:
  OSRM or the haversine fallback);
- **time to recover**: from the fault's end (the service restored) to the last sign of
  degradation: a breaker not yet closed, a checkout still deferred, or a 5 s window with
  more errors than the run's pre-fault error rate explains (binomial tail < 0.001). It is
  "not observed" (censored) unless the load went on 10 s past it.

Unplanned incidents (a service that stopped answering when no fault targeted it) are
read in ``analysis.incidents``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.outcomes import error_mask, load_period
from analysis.percentiles import proportion_ci
from analysis.runs import Run
from analysis.step_stats import latency_stats
from runformat.schemas import PAYMENT_PENDING

BREAKER_METRIC = "marketplace_circuit_breaker_state"
OPEN = 2.0  # marketplace.metrics.BREAKER_STATES["opened"]
BREAKER_OF = {"stripe": "stripe", "osrm": "osrm", "redis": "redis"}
"""Which breaker guards a fault's target (marketplace.breakers.SETTINGS)."""
CATALOGUE_CART = ("/products", "/farms", "/cart")
CHECKOUT = "POST /checkout"
DECLINED = "payment_declined"
ERROR_WINDOW_S = 5
QUIET_S = 10.0
"""Clean load needed after the last sign of degradation for recovery to count as seen."""
SIGNIFICANCE = 0.001
BASELINE_S = 60.0


@dataclass
class FaultMeasure:
    """What one fault did, measured from the run's events and samples."""

    fault: dict[str, Any]
    label: str
    start_us: int
    end_us: int
    users: float | None
    detect_s: float | None = None
    detect_note: str = ""
    paths_n: int = 0
    paths_errors: int = 0
    paths_error_ci: tuple[float, float] | None = None
    p95_ms: float | None = None
    p95_ci: tuple[float, float] | None = None
    p95_note: str = ""
    checkouts: dict[str, int] = field(default_factory=dict)
    batches: dict[str, float] = field(default_factory=dict)
    recovery_s: float | None = None
    recovery_censored: bool = False
    recovery_note: str = ""

    @property
    def order_failures(self) -> int:
        return self.checkouts.get("failed", 0)

    @property
    def orders(self) -> int:
        """Checkouts the system had to handle (declined cards left out)."""
        return sum(v for k, v in self.checkouts.items() if k != "declined")

    def mix_text(self) -> str:
        mix = ", ".join(f"{v} {k}" for k, v in self.checkouts.items() if v) or "no checkouts"
        routed = ", ".join(f"{v:g} {k}" for k, v in self.batches.items() if v)
        return f"checkouts: {mix}" + (f"; batches routed: {routed}" if routed else "")


# --- reading ---------------------------------------------------------------------------


def windows(run: Run) -> list[dict[str, Any]]:
    """Faults that started, each with its restoration ``restored_us``: when the service
    answered again after the fault was undone (``recovered_us``), else when it was undone
    (``end_us``); a fault still open at the end lasts the load."""
    _, load_end = load_period(run)
    out = []
    for f in run.faults:
        if not isinstance(f.get("start_us"), int | float):
            continue
        end = f.get("end_us") if isinstance(f.get("end_us"), int | float) else load_end
        back = f.get("recovered_us")
        restored = max(end, back) if isinstance(back, int | float) else end
        out.append(
            {**f, "start_us": int(f["start_us"]), "restored_us": int(max(restored, f["start_us"]))}
        )
    return sorted(out, key=lambda f: f["start_us"])


def label(fault: dict[str, Any], origin_us: int) -> str:
    at = (fault["start_us"] - origin_us) / 1e6
    text = fault.get("text") or f"{fault.get('kind', 'fault')}:{fault.get('target', '')}"
    return f"{text} (at {at:.0f} s)"


# --- measuring -------------------------------------------------------------------------


def measure(run: Run) -> list[FaultMeasure]:
    """Every injected fault, measured (empty when the run injected none)."""
    faults = windows(run)
    return [_measure_one(run, f, faults) for f in faults]


def _measure_one(run: Run, fault: dict[str, Any], all_faults: list[dict]) -> FaultMeasure:
    ev = run.events
    start, end = fault["start_us"], fault["restored_us"]
    inside = (ev.ts_us >= start) & (ev.ts_us < max(end, start + 1_000_000))
    m = FaultMeasure(
        fault, label(fault, run.start_us), start, end,
        float(np.mean(ev.users[inside])) if inside.any() else None,
    )  # fmt: skip
    _detect(run, m)
    _paths(run, m, inside)
    _checkouts(run, m, start, _recovery(run, m, all_faults))
    return m


def _breaker_series(run: Run, breaker: str) -> pd.DataFrame:
    s = run.samples
    if s.empty:
        return s
    sel = s[(s["source"] == "service") & (s["metric"] == BREAKER_METRIC)]
    if sel.empty:
        return sel
    mask = [json.loads(lab or "{}").get("breaker") == breaker for lab in sel["labels"].astype(str)]
    return sel[np.array(mask, dtype=bool)].sort_values("ts_us")


def _detect(run: Run, m: FaultMeasure) -> None:
    breaker = BREAKER_OF.get(str(m.fault.get("target")))
    if breaker is None:
        m.detect_note = f"no circuit breaker guards {m.fault.get('target')}"
        return
    series = _breaker_series(run, breaker)
    if series.empty:
        m.detect_note = f"{BREAKER_METRIC}{{breaker={breaker}}} not sampled"
        return
    horizon = m.end_us + int(QUIET_S * 1e6)
    opened = series[(series["ts_us"] >= m.start_us) & (series["ts_us"] <= horizon)]
    opened = opened[opened["value"] >= OPEN]
    if opened.empty:
        m.detect_note = f"the {breaker} breaker never opened"
        return
    m.detect_s = (int(opened["ts_us"].iloc[0]) - m.start_us) / 1e6
    m.detect_note = f"{breaker} breaker open {m.detect_s:.0f} s after the start (1 Hz samples)"


def _path_mask(run: Run) -> np.ndarray:
    cats = run.events.endpoint.categories
    ok = np.array(
        [c.partition(" ")[2].startswith(CATALOGUE_CART) for c in cats] or [False], dtype=bool
    )
    return ok[run.events.endpoint.codes] if len(run.events) else np.zeros(0, dtype=bool)


def _paths(run: Run, m: FaultMeasure, inside: np.ndarray) -> None:
    sel = inside & _path_mask(run)
    m.paths_n = int(np.count_nonzero(sel))
    if not m.paths_n:
        m.p95_note = "no catalogue or cart requests during the fault"
        return
    m.paths_errors = int(np.count_nonzero(error_mask(run)[sel]))
    m.paths_error_ci = proportion_ci(m.paths_errors, m.paths_n)
    ts = run.events.ts_us[sel]
    seconds = ((ts - m.start_us) // 1_000_000).astype(np.int64)
    span = int(seconds.max()) + 1  # the window's seconds (every record's index below it)
    q = latency_stats(run.events.latency_us[sel], seconds=(seconds, span)).p(0.95)
    m.p95_ms = q.value_ms
    if q.has_interval:
        m.p95_ci = (q.ci_low_ms, q.ci_high_ms)
    else:
        m.p95_note = q.reason or "no interval"


def _checkouts(run: Run, m: FaultMeasure, start: int, until: int) -> None:
    """Checkout outcomes and batch routing from the fault's start to its recovery."""
    ev = run.events
    code = ev.endpoint.code_of(CHECKOUT)
    win = (ev.ts_us >= start) & (ev.ts_us < until)
    sel = win & (ev.endpoint.codes == code) if code >= 0 else np.zeros(len(ev), dtype=bool)
    failed = error_mask(run)[sel]
    outcomes = np.array(ev.outcome.categories or [""], dtype=object)[ev.outcome.codes[sel]]
    status = ev.status[sel]
    deferred = outcomes == PAYMENT_PENDING
    declined = outcomes == DECLINED  # the customer's card, not an order the system failed
    failed &= ~declined
    paid = ~failed & ~deferred & ~declined & (status >= 200) & (status < 300)
    m.checkouts = {
        "paid": int(np.count_nonzero(paid)),
        "deferred": int(np.count_nonzero(deferred & ~failed)),
        "declined": int(np.count_nonzero(declined)),
        "other": int(np.count_nonzero(~failed & ~paid & ~deferred & ~declined)),
        "failed": int(np.count_nonzero(failed)),
    }
    m.batches = _routing(run, start, until)


def _routing(run: Run, start: int, until: int) -> dict[str, float]:
    s = run.samples
    if s.empty:
        return {}
    sel = s[(s["source"] == "service") & (s["metric"] == "marketplace_batch_routing_total")]
    out: dict[str, float] = {}
    for lab, series in sel.groupby("labels", observed=True):
        method = json.loads(str(lab) or "{}").get("method", "?")
        ts, values = series["ts_us"].to_numpy(), series["value"].to_numpy()
        order = np.argsort(ts)
        ts, values = ts[order], values[order]
        before = values[ts <= start]
        after = values[ts <= until]
        if after.size:
            out[method] = out.get(method, 0.0) + float(
                after[-1] - (before[-1] if before.size else 0)
            )
    return {k: v for k, v in out.items() if k != "empty"}


def _baseline(run: Run, m: FaultMeasure, all_faults: list[dict]) -> float:
    """Error rate before the first fault (the last minute of it), floor 0.1 %."""
    first = min(f["start_us"] for f in all_faults)
    lo = max(run.start_us, first - int(BASELINE_S * 1e6))
    ts = run.events.ts_us
    sel = (ts >= lo) & (ts < first)
    n = int(np.count_nonzero(sel))
    k = int(np.count_nonzero(error_mask(run)[sel])) if n else 0
    return max(k / n if n else 0.0, 0.001)


def _recovery(run: Run, m: FaultMeasure, all_faults: list[dict]) -> int:
    """Set ``m.recovery_s``; returns the end of the degradation (µs) for the outcome mix."""
    _, load_end = load_period(run)
    later = [f["start_us"] for f in all_faults if f["start_us"] > m.start_us]
    horizon = min([load_end, *later])
    signs = [m.end_us]
    breaker = BREAKER_OF.get(str(m.fault.get("target")))
    if breaker is not None:
        series = _breaker_series(run, breaker)
        after = series[(series["ts_us"] >= m.end_us) & (series["ts_us"] < horizon)]
        still = after[after["value"] > 0]
        if not still.empty:
            signs.append(int(still["ts_us"].iloc[-1]) + 1_000_000)
    ev = run.events
    code = ev.endpoint.code_of(CHECKOUT)
    pending = ev.outcome.code_of(PAYMENT_PENDING)
    if code >= 0 and pending >= 0:
        # Answered before the next fault began: a checkout still running when it starts
        # is deferred by that fault, not by this one.
        ended = ev.ts_us + ev.latency_us
        sel = (ev.ts_us >= m.end_us) & (ended < horizon) & (ev.endpoint.codes == code)
        sel &= ev.outcome.codes == pending
        if sel.any():
            signs.append(int(ev.ts_us[sel].max()) + 1)
    signs.append(_last_error_burst(run, m.end_us, horizon, _baseline(run, m, all_faults)))
    recovered = max(signs)
    m.recovery_s = (recovered - m.end_us) / 1e6
    m.recovery_censored = (horizon - recovered) / 1e6 < QUIET_S
    if m.recovery_censored:
        m.recovery_note = (
            f"not seen to recover: the load (or the next fault) follows only "
            f"{(horizon - recovered) / 1e6:.0f} s after the last sign of degradation"
        )
    else:
        m.recovery_note = "breakers closed, no deferred payment and errors at the pre-fault rate"
    return recovered


def _last_error_burst(run: Run, start: int, horizon: int, baseline: float) -> int:
    """End of the last 5 s window in [start, horizon) with more errors than ``baseline``
    explains (binomial upper tail < SIGNIFICANCE): its last error; ``start`` if none."""
    ts = run.events.ts_us
    sel = (ts >= start) & (ts + run.events.latency_us < horizon)  # answered before the next
    if not sel.any():
        return start
    t, err = ts[sel], error_mask(run)[sel]
    bins = (t - start) // (ERROR_WINDOW_S * 1_000_000)
    n = np.bincount(bins)
    k = np.bincount(bins, weights=err.astype(float))
    bad = np.flatnonzero((k > 0) & (stats.binom.sf(k - 1, n, baseline) < SIGNIFICANCE))
    if not bad.size:
        return start
    last = bad[-1]
    return int(t[(bins == last) & err].max()) + 1


# --- side by side: one fault scenario under two profiles ---------------------------------


def _s(value: float | None, censored: bool = False) -> str:
    if value is None:
        return "—"
    return f"≥ {value:.0f} s" if censored else f"{value:.0f} s"


def table(runs: list[Run]) -> str:
    """A Markdown table of every fault of every run (e.g. phase0 vs phase3 under the same
    faults): what users saw and how the system coped, measured."""
    head = (
        "| run | profile | fault | detected | catalogue/cart errors | catalogue/cart P95 "
        "| checkouts (fault to recovery) | order failures | recovered |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for run in runs:
        for m in measure(run) or []:
            errors = f"{m.paths_errors / m.paths_n:.2%} of {m.paths_n}" if m.paths_n else "—"
            p95 = f"{m.p95_ms:,.0f} ms" if m.p95_ms is not None else "—"
            failures = f"{m.order_failures / m.orders:.1%}" if m.orders else "—"
            detected = _s(m.detect_s) if m.detect_s is not None else m.detect_note
            rows.append(
                f"| {run.run_id} | {run.manifest.get('profile')} | {m.label} | {detected} "
                f"| {errors} | {p95} | {m.mix_text()} | {failures} "
                f"| {_s(m.recovery_s, m.recovery_censored)} |"
            )
        if not run.faults:
            rows.append(f"| {run.run_id} | {run.manifest.get('profile')} | no fault | | | | | | |")
    return head + "\n".join(rows) + "\n"
