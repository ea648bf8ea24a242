"""Business outcomes per route: expected ones, deferred payments, failures, counted.

A request's ``outcome`` column (``runformat.schemas``) carries the service's outcome
code when it gave one: ``insufficient_stock`` (sold out) and ``already_claimed`` (claim
lost) are expected and not failures; ``payment_pending`` is a checkout accepted with its
payment deferred (its own class, gated by its share); any other code (e.g.
``insufficient_credits``) came with a failure.  Reports show the counts per route so a
reader sees how many there were, not only a pooled error rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.runs import Run
from runformat.outcomes import is_expected
from runformat.schemas import PAYMENT_PENDING


@dataclass
class RouteOutcomes:
    """Counts of one route inside a window."""

    route: str  # "METHOD /template"
    requests: int
    errors: int
    outcomes: dict[str, int]  # outcome code -> count (codes that occurred)

    @property
    def expected(self) -> int:
        return sum(v for k, v in self.outcomes.items() if is_expected(k, self.route))

    @property
    def payment_pending(self) -> int:
        return self.outcomes.get(PAYMENT_PENDING, 0)


def window_mask(run: Run, start_us: int, end_us: int) -> np.ndarray:
    ts = run.events.ts_us
    return (ts >= start_us) & (ts < end_us)


def error_mask(run: Run) -> np.ndarray:
    """Failed requests: a non-empty error class."""
    cats = run.events.error_class.categories
    failed = np.array([c not in ("", "none", "ok") for c in cats] or [False])
    codes = run.events.error_class.codes
    return failed[codes] if codes.size else np.zeros(0, dtype=bool)


def route_outcomes(run: Run, start_us: int, end_us: int) -> list[RouteOutcomes]:
    """Per-route request, error and outcome counts in [start_us, end_us).

    One pass of ``bincount`` over (route, outcome) pairs rather than a mask of every
    record per route: at tens of millions of records the per-route masks dominated.
    """
    ev = run.events
    inside = window_mask(run, start_us, end_us)
    n_ep = len(ev.endpoint.categories)
    n_codes = max(len(ev.outcome.categories), 1)
    ep = ev.endpoint.codes[inside].astype(np.int64)
    requests = np.bincount(ep, minlength=n_ep)
    errors = np.bincount(ep[error_mask(run)[inside]], minlength=n_ep)
    pairs = np.bincount(ep * n_codes + ev.outcome.codes[inside], minlength=n_ep * n_codes)
    pairs = pairs.reshape(-1, n_codes)
    out = []
    for code, route in enumerate(ev.endpoint.categories):
        n = int(requests[code])
        if not n:
            continue
        outcomes = {
            ev.outcome.categories[k]: int(c)
            for k, c in enumerate(pairs[code])
            if c and ev.outcome.categories[k]
        }
        out.append(RouteOutcomes(route, n, int(errors[code]), outcomes))
    return sorted(out, key=lambda r: r.route)


def load_period(run: Run) -> tuple[int, int]:
    """The whole load period: load start to the end of the last stage plus the drain
    (requests in flight at the end are recorded after it), i.e. the last recorded event.

    While the run is still ``running`` (a gate-hold check analyses it during the load,
    the last stage cut where the check looks) the events after that stage are more of
    the load, not a drain: the period ends with the stage. Otherwise a counter would
    need a sample after the newest event on disk, which the samplers' 2-s flush has
    rarely written yet, and stay "insufficient data" through every check of the hold."""
    end = run.load_end_us
    if len(run.events) and run.meta.status != "running":
        end = max(end, int(run.events.ts_us.max()) + 1)
    return run.start_us, end
