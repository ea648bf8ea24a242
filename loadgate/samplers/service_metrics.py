"""The marketplace service's own Prometheus ``/metrics``, and the summary counters
analysis reads derived from it (cache hits, jobs, external calls)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from loadgate.samplers.loop import Row, encode_labels
from runformat.metrics import (
    CACHE_HITS,
    CACHE_MISSES,
    JOBS_COMPLETED,
    JOBS_ENQUEUED,
    JOBS_FAILED,
    OSRM_CALLS,
    STRIPE_CALLS,
)
from runformat.schemas import DB_CONNECTION_ERRORS

# Summary counters analysis reads (docs/run-directory.md), derived from the
# service's own Prometheus series: (metric, family, label filter).
DERIVED_COUNTERS: tuple[tuple[str, str, dict[str, str]], ...] = (
    (DB_CONNECTION_ERRORS, "marketplace_db_connection_errors_total", {}),
    (CACHE_HITS, "marketplace_cache_requests_total", {"result": "hit"}),
    (CACHE_MISSES, "marketplace_cache_requests_total", {"result": "miss"}),
    (JOBS_ENQUEUED, "marketplace_queue_jobs_enqueued_total", {}),
    (JOBS_COMPLETED, "marketplace_queue_jobs_completed_total", {}),
    (JOBS_FAILED, "marketplace_queue_jobs_failed_total", {}),
    (STRIPE_CALLS, "marketplace_external_calls_total", {"service": "stripe"}),
    (OSRM_CALLS, "marketplace_external_calls_total", {"service": "osrm"}),
)


_SKIPPED_SUFFIXES = ("_bucket", "_created")


def without_skipped_series(text: str) -> str:
    """The exposition text without the histogram buckets and ``_created`` lines.

    They are skipped anyway; dropping their lines before the (pure Python) parser sees
    them saves most of its work, since buckets are most of the lines.
    """
    kept = []
    for line in text.splitlines():
        name = line.partition("{")[0].partition(" ")[0]
        if not line.startswith("#") and name.endswith(_SKIPPED_SUFFIXES):
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


@dataclass
class PrometheusSampler:
    """The service's own /metrics: counters, gauges, histogram sums and counts.

    Histogram buckets are skipped: percentiles come from the raw request
    records, and the buckets would multiply the sample volume tenfold. The
    summary counters analysis reads (``DERIVED_COUNTERS``) are added, summed
    over the series that match.
    """

    url: str
    name: str = "service"
    _client: httpx.Client | None = None

    def sample(self) -> Iterable[Row]:
        # One client for the run: a new one per second costs an SSL context each time.
        self._client = self._client or httpx.Client(timeout=2)
        text = without_skipped_series(self._client.get(self.url).text)
        rows: list[Row] = []
        derived = dict.fromkeys((d[0] for d in DERIVED_COUNTERS), 0.0)
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name.endswith(_SKIPPED_SUFFIXES):
                    continue
                rows.append((self.name, s.name, float(s.value), encode_labels(**s.labels)))
                for metric, source_name, wanted in DERIVED_COUNTERS:
                    if s.name == source_name and all(
                        s.labels.get(k) == v for k, v in wanted.items()
                    ):
                        derived[metric] += float(s.value)
        rows += [(self.name, metric, value, "") for metric, value in derived.items()]
        return rows
