"""Once a second, what the stack and the load generator are doing.

Latency alone cannot say *why* a step got slow; these samples can (a pool
with clients waiting, a CPU at 100 %, a generator that saturated before the
service did). Each sampler reads one source and returns rows of
``(source, metric, value, labels)``; :class:`SamplerLoop` calls them all at
1 Hz in a thread and writes the rows through :class:`ParquetBatches` into
``samples/``. A sampler that fails (its service paused, killed by a fault)
is recorded as ``sampler_errors`` and the loop goes on.

Counters (transactions, keyspace hits) are stored raw; analysis turns them
into rates over its own windows, so no rate is computed twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import psutil
import psycopg
import redis
from prometheus_client.parser import text_string_to_metric_families

from runformat.metrics import (
    CACHE_HITS,
    CACHE_MISSES,
    CONNECTIONS,
    CONNECTIONS_TOTAL,
    CPU_PERCENT,
    DEADLOCKS_TOTAL,
    JOBS_COMPLETED,
    JOBS_ENQUEUED,
    JOBS_FAILED,
    LOCKS_WAITING,
    MAX_CONNECTIONS,
    MEMORY_PERCENT,
    OPEN_FDS,
    OSRM_CALLS,
    POOL_COLUMNS,
    POOL_SIZE,
    REDIS_METRICS,
    RSS_BYTES,
    SOCKETS,
    STATEMENT_METRICS,
    STATS_COLUMNS,
    STRIPE_CALLS,
    XACT_TOTAL,
)
from runformat.records import SAMPLE_SCHEMA, ParquetBatches, now_us
from runformat.schemas import DB_CONNECTION_ERRORS, HOST_CPU_METRIC, HOST_SOURCE

Row = tuple[str, str, float, str]


def _labels(**labels: object) -> str:
    return json.dumps(labels, sort_keys=True) if labels else ""


class Sampler(Protocol):
    name: str

    def sample(self) -> Iterable[Row]: ...


def count_fds(pid: int) -> int:
    """Open fds of one process; 0 if it is gone.

    One ``stat`` of ``/proc/PID/fd``, whose size is the number of open fds (Linux 6.2+),
    instead of listing the directory; older kernels report 0 there and the directory
    is listed.
    """
    path = f"/proc/{pid}/fd"
    try:
        size = os.stat(path).st_size
        return size if size > 0 else len(os.listdir(path))
    except OSError:
        return 0


def count_sockets(pid: int) -> int:
    """Sockets among one process's fds (0 if it is gone): a readlink per fd.

    Sockets, not "TCP connections": psutil's ``Process.net_connections`` re-reads the
    kernel's whole TCP table for *each* process, and that table is slow to produce under
    load (~80 ms a read with 1,400 sockets). With the Postgres backends that took more than
    a second per 1 Hz tick: the sampler thread used two thirds of a core of the two the
    service under test was running on (issue 10). Still a readlink per fd, thousands a
    second under load, so :class:`ProcessSampler` counts them every few seconds only.
    """
    sockets = 0
    try:
        entries = list(os.scandir(f"/proc/{pid}/fd"))
    except OSError:
        return 0
    for entry in entries:
        try:
            if os.readlink(entry.path).startswith("socket:["):
                sockets += 1
        except OSError:
            continue
    return sockets


def read_ppids() -> dict[int, int]:
    """pid -> parent pid of every process on the host, from ``/proc/PID/stat``."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split(b" ", 2)
        if len(fields) >= 2:
            parents[int(entry.name)] = int(fields[1])
    return parents


class ProcessTable:
    """Who is whose child, read from ``/proc`` at most once per ``max_age_s``.

    Finding a process tree means reading the ``stat`` of *every* process on the host
    (psutil's ``children(recursive=True)`` does the same). With one tree per sampled
    service that was about ten full scans a second; the samplers of one tick now share
    one scan.
    """

    def __init__(self, max_age_s: float = 0.5) -> None:
        self.max_age_s = max_age_s
        self._children: dict[int, list[int]] = {}
        self._read_at = -float("inf")
        self._lock = threading.Lock()

    def descendants(self, pid: int) -> list[int]:
        """Every process below ``pid`` (children, their children...), parents first."""
        with self._lock:
            if time.monotonic() - self._read_at > self.max_age_s:
                children: dict[int, list[int]] = {}
                for child, parent in read_ppids().items():
                    children.setdefault(parent, []).append(child)
                self._children, self._read_at = children, time.monotonic()
            children = self._children
        found = list(children.get(pid, ()))
        for child in found:  # the list grows as it is walked: breadth first
            found.extend(children.get(child, ()))
        return found


PROCESS_TABLE = ProcessTable()
"""Shared by every :class:`ProcessSampler` of the process (one scan per tick)."""

SOCKETS_EVERY_S = 5.0
"""Seconds between two socket counts of one process tree (a readlink per fd)."""


@dataclass
class ProcessSampler:
    """CPU, memory, open fds and sockets of one process tree (a service or a worker).

    ``cpu_percent``, ``rss_bytes`` and ``open_fds`` are sampled every tick; ``sockets``
    every ``sockets_every_s`` (rows only on the ticks that count them): a Postgres under
    load has thousands of fds, and a readlink each per second was about a tenth of the
    harness's profile.
    """

    name: str
    pid: int
    source: str = ""
    children: bool = True
    """False for the harness itself, whose children (Locust, local services) have their
    own samplers and would be counted twice."""
    locate: Callable[[], int] | None = None
    """Where the process is now, for a service that a fault restarts under a new pid
    (``stack.services[name].pid``); without it a restarted service's samples stop."""
    table: ProcessTable = field(default_factory=lambda: PROCESS_TABLE)
    sockets_every_s: float = SOCKETS_EVERY_S
    _procs: dict[int, psutil.Process] = field(default_factory=dict)
    _sockets_at: float = -float("inf")

    def _root(self) -> psutil.Process:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            current = self.locate() if self.locate is not None else self.pid
            if current == self.pid:
                raise
            self.pid = current
            self._procs.clear()
            self._sockets_at = -float("inf")
            root = psutil.Process(self.pid)
        # cpu_percent needs the same Process object across calls.
        return self._procs.setdefault(root.pid, root)

    def _tree(self, root: psutil.Process) -> list[psutil.Process]:
        """The root and its descendants, as the Process objects of earlier ticks."""
        if not self.children:
            return [root]
        tree = [root]
        for pid in self.table.descendants(root.pid):
            proc = self._procs.get(pid)
            if proc is None:
                try:
                    proc = self._procs[pid] = psutil.Process(pid)
                except psutil.NoSuchProcess:
                    continue
            tree.append(proc)
        alive = {p.pid for p in tree}
        for pid in [p for p in self._procs if p not in alive]:
            del self._procs[pid]  # gone: a later process may reuse its pid
        return tree

    def sample(self) -> Iterable[Row]:
        tree = self._tree(self._root())
        count_now = time.monotonic() - self._sockets_at >= self.sockets_every_s
        cpu = rss = fds = sockets = 0.0
        for proc in tree:
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            fds += count_fds(proc.pid)
            if count_now:
                sockets += count_sockets(proc.pid)
        source = self.source or f"process:{self.name}"
        rows = [
            (source, CPU_PERCENT, cpu, ""),
            (source, RSS_BYTES, rss, ""),
            (source, OPEN_FDS, fds, ""),
        ]
        if count_now:
            self._sockets_at = time.monotonic()
            rows.append((source, SOCKETS, sockets, ""))
        return rows


@dataclass
class HostSampler:
    """Whole-host CPU (100 = every core busy) and memory.

    Shown beside the verdict: a box running the stack and the generator together is
    measuring both at once, and a host near 100 % slows the generator as much as the
    service.
    """

    name: str = "host"

    def __post_init__(self) -> None:
        psutil.cpu_percent(None)  # the first call only starts the interval

    def sample(self) -> Iterable[Row]:
        return [
            (HOST_SOURCE, HOST_CPU_METRIC, float(psutil.cpu_percent(None)), ""),
            (HOST_SOURCE, MEMORY_PERCENT, float(psutil.virtual_memory().percent), ""),
        ]


@dataclass
class PostgresSampler:
    """Connections by state vs max_connections, transactions, lock waits."""

    dsn: str
    name: str = "postgres"
    _conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=2, application_name="loadgate-sampler"
            )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def sample(self) -> Iterable[Row]:
        conn = self._connection()
        rows: list[Row] = []
        states = conn.execute(
            "SELECT coalesce(state, 'background'), count(*) FROM pg_stat_activity "
            "WHERE application_name <> 'loadgate-sampler' GROUP BY 1"
        ).fetchall()
        total = 0
        for state, count in states:
            rows.append((self.name, CONNECTIONS, float(count), _labels(state=state)))
            total += count
        rows.append((self.name, CONNECTIONS_TOTAL, float(total), ""))
        (max_conn,) = conn.execute("SHOW max_connections").fetchone()  # type: ignore[misc]
        rows.append((self.name, MAX_CONNECTIONS, float(max_conn), ""))
        xacts = conn.execute(
            "SELECT sum(xact_commit + xact_rollback), sum(deadlocks) FROM pg_stat_database"
        ).fetchone()
        rows.append((self.name, XACT_TOTAL, float(xacts[0] or 0), ""))  # type: ignore[index]
        rows.append((self.name, DEADLOCKS_TOTAL, float(xacts[1] or 0), ""))  # type: ignore[index]
        (waiting,) = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()  # type: ignore[misc]
        rows.append((self.name, LOCKS_WAITING, float(waiting), ""))
        return rows + self._statements(conn)

    def _statements(self, conn: psycopg.Connection) -> list[Row]:
        """Statements executed (running totals from pg_stat_statements), those on the
        rate-limit table apart: §3.2's "3 DB operations per request" is then measured,
        not assumed. Nothing when the extension is absent (e.g. a foreign database)."""
        try:
            counts = conn.execute(STATEMENT_COUNTS).fetchone()
        except psycopg.Error:
            return []
        return [
            (self.name, n, float(v or 0), "")
            for n, v in zip(STATEMENT_METRICS, counts or (), strict=True)
        ]


STATEMENT_COUNTS = (
    "SELECT sum(calls),"
    " sum(calls) FILTER (WHERE query ILIKE '%rate_limits%'),"
    " sum(calls) FILTER (WHERE query ILIKE '%rate_limits%'"
    " AND (query ILIKE 'insert%' OR query ILIKE 'delete%'))"
    " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
    " WHERE datname = current_database()) AND query NOT ILIKE '%pg_stat_statements%'"
)
"""Statement calls of this database: all, on ``rate_limits``, and writes to it (this
query names the table too: queries reading pg_stat_statements are left out)."""

_POOL_COLUMNS = POOL_COLUMNS


@dataclass
class PgBouncerSampler:
    """SHOW POOLS / SHOW STATS from PgBouncer's admin console.

    One admin connection for the run, opened again after PgBouncer restarts (a login a
    second was a cost of the harness, not of the stack). Admin-console clients are not
    in the ``blueharvests`` pool, so they change none of its numbers.
    """

    dsn: str
    name: str = "pgbouncer"
    database: str = "blueharvests"
    _conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            admin = self.dsn.rsplit("/", 1)[0] + "/pgbouncer"
            self._conn = psycopg.connect(
                admin, autocommit=True, prepare_threshold=None, connect_timeout=2
            )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def sample(self) -> Iterable[Row]:
        rows: list[Row] = []
        conn = self._connection()
        try:
            cur = conn.execute("SHOW POOLS")
            names = [c.name for c in cur.description or []]
            for record in cur.fetchall():
                pool = dict(zip(names, record, strict=True))
                if pool.get("database") != self.database:
                    continue
                for column in _POOL_COLUMNS:
                    rows.append(
                        (
                            self.name,
                            column,
                            float(pool.get(column) or 0),
                            _labels(user=pool.get("user")),
                        )
                    )
            cur = conn.execute("SHOW DATABASES")
            names = [c.name for c in cur.description or []]
            for record in cur.fetchall():
                database = dict(zip(names, record, strict=True))
                if database.get("name") == self.database:
                    rows.append((self.name, POOL_SIZE, float(database.get("pool_size") or 0), ""))
            cur = conn.execute("SHOW STATS")
            names = [c.name for c in cur.description or []]
            for record in cur.fetchall():
                stats = dict(zip(names, record, strict=True))
                if stats.get("database") == self.database:
                    for column in STATS_COLUMNS:
                        rows.append((self.name, column, float(stats.get(column) or 0), ""))
        except psycopg.Error:
            conn.close()  # PgBouncer went away: connect again on the next tick
            raise
        return rows


@dataclass
class RedisSampler:
    url: str
    name: str = "redis"
    _client: redis.Redis | None = None

    def sample(self) -> Iterable[Row]:
        if self._client is None:
            self._client = redis.Redis.from_url(self.url, socket_timeout=2)
        info = self._client.info()
        return [(self.name, m, float(info.get(m, 0)), "") for m in REDIS_METRICS]


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
                rows.append((self.name, s.name, float(s.value), _labels(**s.labels)))
                for metric, source_name, wanted in DERIVED_COUNTERS:
                    if s.name == source_name and all(
                        s.labels.get(k) == v for k, v in wanted.items()
                    ):
                        derived[metric] += float(s.value)
        rows += [(self.name, metric, value, "") for metric, value in derived.items()]
        return rows


@dataclass
class ContainerSampler:
    """A container's processes, sampled like local ones through their host pid.

    The engine's own stats API answers slowly (a second or more per call),
    which would stretch a 1 Hz loop; a local engine's containers are host
    processes, so psutil reads them directly once their pid is known.
    """

    name: str
    container_id: str
    _process: ProcessSampler | None = None

    def sample(self) -> Iterable[Row]:
        if self._process is None:
            from stack.engine import connect_engine

            client = connect_engine(timeout=5)
            try:
                pid = int(client.containers.get(self.container_id).attrs["State"]["Pid"])
            finally:
                client.close()
            if pid <= 0:
                raise RuntimeError(f"container {self.container_id[:12]} is not running")
            self._process = ProcessSampler(self.name, pid)
        try:
            return self._process.sample()
        except psutil.NoSuchProcess:
            self._process = None  # restarted: a new pid, looked up on the next tick
            raise


class SamplerLoop:
    """Runs every sampler once a second in a thread, until stopped."""

    def __init__(self, run_dir: Path, samplers: list[Sampler], interval_s: float = 1.0):
        self.samplers = samplers
        self.interval_s = interval_s
        self.batches = ParquetBatches(Path(run_dir) / "samples", "stack", SAMPLE_SCHEMA)
        self.errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="samplers", daemon=True)

    def start(self) -> None:
        self.batches.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop, taking one last sample so final counters cover every request."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample_once()
        self.batches.close()
        for sampler in self.samplers:  # connections held for the run
            close = getattr(sampler, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def sample_once(self) -> None:
        ts = now_us()
        for sampler in self.samplers:
            try:
                rows = list(sampler.sample())
            except Exception as exc:
                self.errors[sampler.name] = f"{type(exc).__name__}: {exc}"
                self.batches.append((ts, sampler.name, "sampler_errors", 1.0, ""))
                continue
            for source, metric, value, labels in rows:
                self.batches.append((ts, source, metric, value, labels))

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_tick += self.interval_s
            self._stop.wait(max(0.0, next_tick - time.monotonic()))


def stack_samplers(
    urls: Mapping[str, str],
    pids: Mapping[str, int] | None = None,
    containers: Mapping[str, str] | None = None,
    locate: Callable[[str], int] | None = None,
) -> list[Sampler]:
    """The samplers for a stack: one per service it has, plus its processes.

    ``pids`` are local service processes, ``containers`` container ids (the
    containers provider); each service is sampled by whichever it has.
    ``locate(name)`` gives a local service's current pid after a restart.
    """
    samplers: list[Sampler] = [
        ProcessSampler(n, pid, locate=(lambda n=n: locate(n)) if locate else None)
        for n, pid in (pids or {}).items()
    ]
    samplers += [ContainerSampler(n, cid) for n, cid in (containers or {}).items()]
    if "postgres" in urls:
        samplers.append(PostgresSampler(urls["postgres"]))
    if "replica" in urls:
        samplers.append(PostgresSampler(urls["replica"], name="replica"))
    if "pgbouncer" in urls:
        samplers.append(PgBouncerSampler(urls["pgbouncer"]))
    if "redis" in urls:
        samplers.append(RedisSampler(urls["redis"]))
    if "marketplace" in urls:
        samplers.append(PrometheusSampler(urls["marketplace"].rstrip("/") + "/metrics"))
    return samplers
