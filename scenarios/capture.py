"""Raw per-request capture: every request one record, flushed as the run goes.

Locust's own statistics round response times into buckets; analysis needs the
raw latencies (µs) to compute exact percentiles and confidence intervals. A
listener on Locust's ``request`` event (the hook Locust offers for this, no
monkeypatching) buffers records in columns and writes them every
``flush_s`` seconds as a small, complete Parquet file
(``events/<worker>-<seq>.parquet``, written to a temp name and renamed), so a
worker killed with SIGKILL loses at most the last ``flush_s`` seconds and
never leaves a half-written file. The columns are documented in
``docs/run-directory.md``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from loadgate.records import ParquetBatches

EVENT_SCHEMA = pa.schema(
    [
        ("ts_us", pa.int64()),
        ("persona", pa.string()),
        ("name", pa.string()),
        ("method", pa.string()),
        ("status", pa.int16()),
        ("latency_us", pa.int64()),
        ("intended_latency_us", pa.int64()),
        ("bytes", pa.int64()),
        ("error_class", pa.string()),
        ("worker", pa.string()),
        ("users", pa.int32()),
    ]
)

_TIMEOUT_WORDS = ("timeout", "timed out")


def classify_error(status: int, exception: BaseException | None) -> str:
    """One error class per record: "" (success), connection, timeout, 429, 5xx, 4xx, assertion.

    Order matters: a transport failure has no status (0) and is classified by
    its exception; 429 and 5xx are always errors; a 4xx is an error unless the
    scenario accepted it as an expected business outcome (Locust's
    ``response.success()``, which leaves no exception), such as a sold-out
    item at checkout; an exception on a 2xx/3xx response is a failed check
    (``assertion``).
    """
    if status == 0:
        if exception is None:
            return "connection"
        text = f"{type(exception).__name__} {exception}".lower()
        if any(word in text for word in _TIMEOUT_WORDS):
            return "timeout"
        return "connection"
    if status == 429:
        return "429"
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "4xx" if exception is not None else ""
    return "assertion" if exception is not None else ""


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
                classify_error(status, exception),
                self.worker,
                int(self.users()),
            )
        )

    def start(self, spawn: Callable[[Callable[[], None]], Any] | None = None) -> None:
        self.batches.start(spawn)

    def flush(self) -> int:
        return self.batches.flush()

    def close(self) -> None:
        self.batches.close()
