"""The service-metrics sampler reads a real ``/metrics`` endpoint (prometheus_client's own
HTTP exporter on 127.0.0.1, in this process) into rows: every series but the buckets,
labels as sorted JSON, and the summary counters analysis reads summed over the series
that match their label filter."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from loadgate.samplers.service_metrics import PrometheusSampler
from runformat.metrics import CACHE_HITS, CACHE_MISSES, JOBS_FAILED, OSRM_CALLS, STRIPE_CALLS
from runformat.schemas import DB_CONNECTION_ERRORS


def test_prometheus_sampler_rows_and_derived_counters():
    registry = CollectorRegistry()
    cache = Counter("marketplace_cache_requests", "c", ["result", "route"], registry=registry)
    cache.labels("hit", "/a").inc(3)
    cache.labels("hit", "/b").inc(4)
    cache.labels("miss", "/a").inc(2)
    calls = Counter("marketplace_external_calls", "e", ["service"], registry=registry)
    calls.labels("stripe").inc(5)
    latency = Histogram("marketplace_latency_seconds", "l", registry=registry)
    latency.observe(0.25)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    sampler = PrometheusSampler(f"http://127.0.0.1:{server.server_port}/metrics")
    try:
        rows = list(sampler.sample())
    finally:
        assert sampler._client is not None
        sampler._client.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    assert {source for source, _, _, _ in rows} == {"service"}
    by_metric: dict[str, list[tuple[float, str]]] = {}
    for _, metric, value, labels in rows:
        by_metric.setdefault(metric, []).append((value, labels))
    hits = sorted(by_metric["marketplace_cache_requests_total"])
    assert hits == [
        (2.0, json.dumps({"result": "miss", "route": "/a"})),
        (3.0, json.dumps({"result": "hit", "route": "/a"})),
        (4.0, json.dumps({"result": "hit", "route": "/b"})),
    ]
    assert by_metric["marketplace_latency_seconds_sum"] == [(0.25, "")]
    assert by_metric["marketplace_latency_seconds_count"] == [(1.0, "")]
    assert not [m for m in by_metric if m.endswith(("_bucket", "_created"))]
    assert by_metric[CACHE_HITS] == [(7.0, "")]  # summed over the routes
    assert by_metric[CACHE_MISSES] == [(2.0, "")]
    assert by_metric[STRIPE_CALLS] == [(5.0, "")]
    assert by_metric[OSRM_CALLS] == [(0.0, "")]  # no series yet: still a row, at 0
    assert by_metric[JOBS_FAILED] == [(0.0, "")]
    assert by_metric[DB_CONNECTION_ERRORS] == [(0.0, "")]
