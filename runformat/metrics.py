"""Metric names of ``samples/*.parquet`` that ``loadgate.samplers`` writes and analysis
reads: declared once here, beside the run format, so writer and readers cannot drift.

A sample row is (source, metric, value, labels); the source is a service name
(``postgres``, ``pgbouncer``, ``redis``, ``service``) or ``process:<name>`` for a process
tree.  Where a name is the field of the service's own statistics (PgBouncer's SHOW POOLS /
SHOW STATS columns, Redis INFO fields), the sampler reads that field under the same name.
The generator's and the host's metrics are in ``runformat.schemas`` (``LAG_METRIC``,
``GENERATOR_CPU_METRIC``, ``HOST_CPU_METRIC``), as is ``DB_CONNECTION_ERRORS``.
"""

from __future__ import annotations

# --- any process tree (source "process:<name>", or a service's own process) ------------
CPU_PERCENT = "cpu_percent"  # 100 = one core busy
RSS_BYTES = "rss_bytes"
OPEN_FDS = "open_fds"
SOCKETS = "sockets"

# --- the host -----------------------------------------------------------------------------
MEMORY_PERCENT = "memory_percent"

# --- Postgres (pg_stat_activity, pg_stat_database, pg_locks, pg_stat_statements) --------
CONNECTIONS = "connections"  # per state (label ``state``)
CONNECTIONS_TOTAL = "connections_total"
MAX_CONNECTIONS = "max_connections"
XACT_TOTAL = "xact_total"
DEADLOCKS_TOTAL = "deadlocks_total"
LOCKS_WAITING = "locks_waiting"
STATEMENT_METRICS = ("statements_total", "rate_limit_statements_total", "rate_limit_writes_total")

# --- PgBouncer (SHOW POOLS columns per user, SHOW DATABASES, SHOW STATS) ----------------
CL_WAITING = "cl_waiting"
SV_ACTIVE = "sv_active"
POOL_COLUMNS = ("cl_active", CL_WAITING, SV_ACTIVE, "sv_idle", "maxwait")
POOL_SIZE = "pool_size"
TOTAL_XACT_COUNT = "total_xact_count"
TOTAL_XACT_TIME = "total_xact_time"
STATS_COLUMNS = (
    TOTAL_XACT_COUNT,
    "total_query_count",
    "total_wait_time",
    TOTAL_XACT_TIME,
    "total_query_time",
)

# --- Redis (INFO fields) ------------------------------------------------------------------
USED_MEMORY = "used_memory"
KEYSPACE_HITS = "keyspace_hits"
KEYSPACE_MISSES = "keyspace_misses"
TOTAL_COMMANDS_PROCESSED = "total_commands_processed"
REDIS_METRICS = (
    "instantaneous_ops_per_sec",
    "connected_clients",
    USED_MEMORY,
    KEYSPACE_HITS,
    KEYSPACE_MISSES,
    TOTAL_COMMANDS_PROCESSED,
)

# --- the service: summary counters derived from its Prometheus series ------------------
CACHE_HITS = "cache_hits"
CACHE_MISSES = "cache_misses"
JOBS_ENQUEUED = "jobs_enqueued"
JOBS_COMPLETED = "jobs_completed"
JOBS_FAILED = "jobs_failed"
STRIPE_CALLS = "stripe_calls"
OSRM_CALLS = "osrm_calls"
