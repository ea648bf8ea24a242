"""Wait, after the load, for the service's job queue to finish what the load enqueued.

Job completion (seed §4.3, phase 2's gate) asks what became of the jobs enqueued during
the load; a payout waits 60 s by design, so a run that stops sampling when Locust stops
would leave them pending and the criterion undecidable (``analysis.jobs``). The run
therefore keeps its samplers going until the queue's own counters show nothing pending,
bounded by ``analysis.jobs.GRACE_S``. Only runs whose gate has ``job_completion_rate``
wait; the others end as soon as the load does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from analysis.jobs import GRACE_S, QUEUES

POLL_S = 2.0
_FAMILY = "marketplace_queue_jobs_{}"  # the parser drops the "_total" suffix


def pending_jobs(metrics_text: str) -> int | None:
    """Jobs enqueued but neither completed nor failed, over the gate's queues (None: the
    service exports no queue counters)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for outcome in ("enqueued", "completed", "failed"):
            if family.name != _FAMILY.format(outcome):
                continue
            totals[outcome] = sum(
                s.value for s in family.samples if s.labels.get("queue") in QUEUES
            )
    if "enqueued" not in totals:
        return None
    return max(0, int(totals["enqueued"] - totals.get("completed", 0) - totals.get("failed", 0)))


def wait_for_queue(
    service_url: str,
    progress: Callable[[str], None],
    limit_s: float = GRACE_S,
    poll_s: float = POLL_S,
) -> int | None:
    """Poll the service's /metrics until no job is pending or ``limit_s`` passed; returns
    the jobs still pending (None: no queue counters, or the service did not answer)."""
    deadline = time.monotonic() + limit_s
    last_said = 0.0
    pending: int | None = None
    with httpx.Client(base_url=service_url, timeout=5) as client:
        while True:
            try:
                pending = pending_jobs(client.get("/metrics").text)
            except httpx.HTTPError:
                return None
            if not pending:
                return pending
            now = time.monotonic()
            if now >= deadline:
                progress(f"job queue: {pending} job(s) still pending after {limit_s:.0f} s")
                return pending
            if now - last_said >= 10:
                progress(f"job queue: waiting for {pending} pending job(s) (up to {limit_s:.0f} s)")
                last_said = now
            time.sleep(poll_s)
