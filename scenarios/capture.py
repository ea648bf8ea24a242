"""Raw per-request capture: every request one record, flushed as the run goes.

Locust's own statistics round response times into buckets; analysis needs the
raw latencies (µs) to compute exact percentiles and confidence intervals. A
listener on Locust's ``request`` event (the hook Locust offers for this, no
monkeypatching) buffers records in columns and writes them every
``flush_s`` seconds as a small, complete Parquet file
(``events/<worker>-<seq>.parquet``, written to a temp name and renamed), so a
worker killed with SIGKILL loses at most the last ``flush_s`` seconds and
never leaves a half-written file. The columns are documented in
``docs/run-directory.md``. Acknowledged writes keep the ids their response returned
in the ``ack`` column (:mod:`scenarios.acks`), for ``loadgate verify --run``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runformat.outcomes import classify_error
from runformat.records import ParquetBatches
from runformat.schemas import EVENT_SCHEMA, PAYMENT_PENDING
from scenarios.acks import ack_of

__all__ = ["RawCapture", "classify_error", "outcome_of"]


def outcome_of(status: int, response: Any) -> str:
    """The business outcome code of a response, "" when it has none.

    Error bodies carry ``{"error": {"code": ...}}`` (marketplace/errors.py); a checkout
    whose payment was deferred answers 202 with ``"status": "payment_pending"``.  Only
    4xx and 202 bodies are parsed, so the cost stays off the common path.
    """
    if not (400 <= status < 500 or status == 202):
        return ""
    body = _json_body(response)
    if not isinstance(body, dict):
        return ""
    if status == 202:
        return PAYMENT_PENDING if body.get("status") == PAYMENT_PENDING else ""
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code else ""


def _json_body(response: Any) -> Any:
    try:
        return response.json()
    except Exception:  # no body, not JSON, or not a response object at all
        return None


def _status_of(response: Any) -> int:
    status = getattr(response, "status_code", 0) or 0
    try:
        return int(status)
    except (TypeError, ValueError):
        return 0


class RawCapture:
    """A listener for Locust's ``request`` event that records every request."""

    def __init__(
        self,
        run_dir: Path,
        worker_id: str | None = None,
        flush_s: float = 2.0,
        users: Callable[[], int] = lambda: 0,
    ) -> None:
        self.worker = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.users = users
        self.batches = ParquetBatches(Path(run_dir) / "events", self.worker, EVENT_SCHEMA, flush_s)

    @property
    def records_written(self) -> int:
        return self.batches.rows_written

    # Locust's request event signature (keyword arguments).
    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        response: Any = None,
        context: dict | None = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        url: str | None = None,
        **_: Any,
    ) -> None:
        context = context or {}
        started = start_time if start_time is not None else time.time() - response_time / 1000
        latency_us = round(response_time * 1000)
        intended = context.get("intended_start")
        intended_latency_us = latency_us
        if intended is not None:
            intended_latency_us += max(0, round((started - intended) * 1_000_000))
        status = _status_of(response)
        outcome = outcome_of(status, response)
        self.batches.append(
            (
                round(started * 1_000_000),
                str(context.get("persona", "")),
                name,
                request_type,
                status,
                latency_us,
                intended_latency_us,
                int(response_length or 0),
                classify_error(status, exception, outcome, f"{request_type} {name}"),
                outcome,
                self.worker,
                int(self.users()),
                ack_of(request_type, name, status, response, url, context.get("profile_id")),
            )
        )

    def start(
        self,
        spawn: Callable[[Callable[[], None]], Any] | None = None,
        offload: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> None:
        self.batches.start(spawn, offload)

    def flush(self) -> int:
        return self.batches.flush()

    def close(self) -> None:
        self.batches.close()
