"""Schemas of the run directory's raw records (docs/run-directory.md).

All timestamps are µs since the Unix epoch (UTC, int64).  ``events/`` holds one row per
request, ``samples/`` one row per (time, source, metric), ``arrivals/`` the open model's
offered / achieved / dropped arrivals per second.
"""

from __future__ import annotations

import pyarrow as pa

EVENT_SCHEMA = pa.schema(
    [
        ("ts_us", pa.int64()),  # request start (actual send)
        ("persona", pa.string()),
        ("name", pa.string()),  # route template, e.g. /products/[id]
        ("method", pa.string()),
        ("status", pa.int16()),  # 0 = no response
        ("latency_us", pa.int64()),  # from the actual send
        ("intended_latency_us", pa.int64()),  # from the intended start (open model)
        ("bytes", pa.int64()),
        ("error_class", pa.string()),  # "" or one of ERROR_CLASSES
        ("outcome", pa.string()),  # business outcome code, "" when none (OUTCOMES)
        ("worker", pa.string()),
        ("users", pa.int32()),
        # JSON of the ids an acknowledged write returned (scenarios/acks.py), else null.
        # Absent in run directories written before issue 21: readers treat it as null.
        ("ack", pa.string()),
    ]
)
#: Event columns that may be missing from older run directories (read as null).
OPTIONAL_EVENT_COLUMNS: tuple[str, ...] = ("ack",)
EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)
#: Event columns analysis reads; a file whose column has another type family than
#: EVENT_SCHEMA's is refused before analysis (:func:`event_column_problem`).
ANALYSED_EVENT_COLUMNS: tuple[str, ...] = (
    "ts_us",
    "status",
    "latency_us",
    "intended_latency_us",
    "users",
    "name",
    "method",
    "error_class",
)


def event_column_problem(schema: pa.Schema) -> str | None:
    """'column NAME is TYPE, not an integer column' when an analysed column of an event
    file's ``schema`` is of the wrong family (integer or string, as EVENT_SCHEMA says)."""
    for name in ANALYSED_EVENT_COLUMNS:
        if name not in schema.names:
            continue
        kind = schema.field(name).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        integer = pa.types.is_integer(EVENT_SCHEMA.field(name).type)
        ok = (
            pa.types.is_integer(kind)
            if integer
            else pa.types.is_string(kind) or pa.types.is_large_string(kind)
        )
        if not ok:
            return f"column {name} is {kind}, not {'an integer' if integer else 'a string'} column"
    return None


SAMPLE_SCHEMA = pa.schema(
    [
        ("ts_us", pa.int64()),
        ("source", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("labels", pa.string()),  # JSON object, "" when none
    ]
)

ARRIVAL_SCHEMA = pa.schema(
    [
        ("ts_us", pa.int64()),  # the second
        ("offered", pa.int64()),
        ("achieved", pa.int64()),
        ("dropped", pa.int64()),
        ("worker", pa.string()),
    ]
)

#: ``error_class`` of a failed request ("" = not a failure).
ERROR_CLASSES: tuple[str, ...] = ("connection", "timeout", "4xx", "429", "5xx", "assertion")

#: ``outcome`` codes that are expected business outcomes, not failures: the service's
#: ``error.code`` (marketplace/errors.py) for what a real shop answers under contention.
#: Any other 4xx code (insufficient_credits, not_payable: paying twice, ...) is a failure.
EXPECTED_OUTCOMES: dict[str, str] = {
    "insufficient_stock": "sold out at checkout",
    "already_claimed": "another driver claimed the batch first",
    "unavailable": "product not available when added to a cart (5 % of the fixtures)",
}
#: Codes expected on one route only ("METHOD /template", code): a generic ``not_found``
#: elsewhere (someone else's order, a missing cart item) stays a failure.
EXPECTED_ROUTE_OUTCOMES: dict[tuple[str, str], str] = {
    ("GET /products/[id]", "not_found"): "product no longer in the catalogue",
}
#: A checkout accepted with its payment deferred (202): its own class, gated by share.
PAYMENT_PENDING = "payment_pending"

#: The load generator's samples have exactly two kinds of source, nothing else is the
#: generator: ``generator`` (each worker's own probe, labels ``{"worker": id}``) and the
#: process sampler's ``process:locust-worker-<i>`` / ``process:locust-master``.
GENERATOR_SOURCE = "generator"
GENERATOR_PROCESS_PREFIX = "process:locust-"
GENERATOR_MASTER_SOURCE = "process:locust-master"


def is_generator_source(source: str) -> bool:
    """A sample of the load generator (never a constraint of the system under test)."""
    return source == GENERATOR_SOURCE or source.startswith(GENERATOR_PROCESS_PREFIX)


def is_generator_worker_source(source: str) -> bool:
    """A sample of one generator worker (the master sends no requests)."""
    return is_generator_source(source) and source != GENERATOR_MASTER_SOURCE


LAG_METRIC = "event_loop_lag_ms"  # sampled LAG_HZ times a second
LAG_INTERVAL_S = 0.1
GENERATOR_CPU_METRIC = "cpu_percent"  # the worker process, 100 = one core
GC_PAUSE_METRIC = "gc_pause_ms"  # the worker's longest garbage-collection pause each second
#: Whole-host CPU (source ``host``): 100 = every core of the machine busy.
HOST_SOURCE = "host"
HOST_CPU_METRIC = "host_cpu_percent"  # not "cpu_percent": never a per-process constraint
#: Service counter of DB connection errors (a running total).
DB_CONNECTION_ERRORS = "db_connection_errors"

#: The longest a simulated user may wait for one response (Locust FastHttpUser's
#: ``network_timeout`` and ``connection_timeout``, 60 s each).  Every request started
#: before the end of the last hold is drained for at least this long, so it is recorded.
REQUEST_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = REQUEST_TIMEOUT_S

RECORD_CHANNEL_FILE = "locust/records.json"
"""Per-worker accounting of records shipped over Locust's channel: written by the master
(``scenarios.record_channel``), copied into the manifest's ``record_channel``."""
