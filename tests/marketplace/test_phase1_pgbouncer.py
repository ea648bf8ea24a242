"""phase1 really goes through PgBouncer, seen from all three sides.

A profile flag saying ``db_route="pgbouncer"`` proves nothing: a wrong URL or a
fallback would silently connect the service straight to Postgres and phase1's
numbers would measure phase0's architecture. So while the service answers a burst
of requests, this test looks at:

- the service's own sockets: connected to PgBouncer's port, none to Postgres';
- PgBouncer's admin console: those sockets are its clients, for ``blueharvests``;
- Postgres' ``pg_stat_activity``: the backends doing the work are PgBouncer's
  server connections (their pids are its ``remote_pid``), at most its pool size.

Each assertion fails if the service connected directly.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import psutil
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.marketplace.conftest import Service, with_db

pytestmark = pytest.mark.integration

DATABASE = "blueharvests"
REQUESTS = 60
CONCURRENCY = 12
USERS = 6
"""phase1 limits each user to 100 requests a minute: spread the burst over a few."""
SAMPLE_EVERY_S = 0.05
MAX_SAMPLES = 400


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def service_remote_ports(service: Service) -> list[int]:
    """Remote ports of the TCP connections of the service and its workers."""
    root = psutil.Process(service.proc.pid)
    ports = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        ports += [c.raddr.port for c in conns if c.raddr and c.status == psutil.CONN_ESTABLISHED]
    return ports


def service_local_ports(service: Service, remote_port: int) -> set[int]:
    """Local ports of the service's connections to ``remote_port`` (its ids as a client)."""
    root = psutil.Process(service.proc.pid)
    ports: set[int] = set()
    for proc in [root, *root.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        ports |= {c.laddr.port for c in conns if c.raddr and c.raddr.port == remote_port}
    return ports


def admin_console(pgbouncer_url: str) -> psycopg.Connection:
    """PgBouncer's console: the virtual ``pgbouncer`` database, simple protocol only."""
    return psycopg.connect(
        with_db(pgbouncer_url, "pgbouncer"),
        autocommit=True,
        prepare_threshold=None,
        row_factory=dict_row,
    )


@dataclass
class Sample:
    """What PgBouncer and Postgres showed at one instant."""

    client_ports: set[int]
    server_backend_pids: set[int]
    app_backend_pids: set[int]


@dataclass
class Sampler:
    """Samples PgBouncer and Postgres in a thread while the burst runs (bounded)."""

    pgbouncer_url: str
    postgres_url: str
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with (
            admin_console(self.pgbouncer_url) as admin,
            psycopg.connect(self.postgres_url, autocommit=True, row_factory=dict_row) as pg,
        ):
            own_pid = pg.info.backend_pid
            for _ in range(MAX_SAMPLES):
                self.samples.append(self.sample(admin, pg, own_pid, postgres_first=False))
                if self.stop.wait(SAMPLE_EVERY_S):
                    break
            self.samples.append(self.sample(admin, pg, own_pid, postgres_first=False))

    @staticmethod
    def sample(
        admin: psycopg.Connection, pg: psycopg.Connection, own_pid: int, postgres_first: bool
    ) -> Sample:
        """Both views of one instant, in the order that makes the asserted inclusion hold.

        PgBouncer opens server connections under load and keeps them (idle timeout
        600 s): asking PgBouncer first, every backend it lists already exists when
        Postgres is asked; asking Postgres first (once quiet), every backend Postgres
        lists is still PgBouncer's when it is asked.
        """
        if postgres_first:
            backends = _backends(pg, own_pid)
            clients, servers = _console(admin)
        else:
            clients, servers = _console(admin)
            backends = _backends(pg, own_pid)
        return Sample(
            client_ports={c["port"] for c in clients if c["database"] == DATABASE},
            server_backend_pids={
                s["remote_pid"] for s in servers if s["database"] == DATABASE and s["remote_pid"]
            },
            app_backend_pids=backends,
        )


def _backends(pg: psycopg.Connection, own_pid: int) -> set[int]:
    rows = pg.execute(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = %s AND backend_type = 'client backend' AND pid <> %s",
        (DATABASE, own_pid),
    ).fetchall()
    return {r["pid"] for r in rows}


def _console(admin: psycopg.Connection) -> tuple[list[dict], list[dict]]:
    return admin.execute("SHOW CLIENTS").fetchall(), admin.execute("SHOW SERVERS").fetchall()


def sample_once(pgbouncer_url: str, postgres_url: str) -> Sample:
    with (
        admin_console(pgbouncer_url) as admin,
        psycopg.connect(postgres_url, autocommit=True, row_factory=dict_row) as pg,
    ):
        return Sampler.sample(admin, pg, pg.info.backend_pid, postgres_first=True)


def burst(service: Service) -> list[int]:
    """REQUESTS database-backed requests, CONCURRENCY at a time; their status codes."""
    tokens = [service.consumer()[1] for _ in range(USERS)]

    def one(i: int) -> int:
        with httpx.Client(base_url=service.base, timeout=30) as c:
            params = {"q": f"item {i % 2}", "limit": 10}
            return c.get("/products/search", params=params, headers=tokens[i % USERS]).status_code

    with cf.ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(one, range(REQUESTS)))


def pool_size(pgbouncer_url: str) -> int:
    with admin_console(pgbouncer_url) as admin:
        rows = admin.execute("SHOW DATABASES").fetchall()
    return next(r["pool_size"] for r in rows if r["name"] == DATABASE)


def test_phase1_connects_through_pgbouncer(phase1: Service) -> None:
    urls = phase1.world.urls
    pgbouncer_port, postgres_port = port_of(urls["pgbouncer"]), port_of(urls["postgres"])
    sampler = Sampler(urls["pgbouncer"], urls["postgres"])
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    try:
        statuses = burst(phase1)
        remote_ports = service_remote_ports(phase1)
        own_client_ports = service_local_ports(phase1, pgbouncer_port)
    finally:
        sampler.stop.set()
        thread.join(timeout=30)
    assert statuses == [200] * REQUESTS
    assert sampler.samples

    # the service's sockets: PgBouncer yes, Postgres never
    assert pgbouncer_port in remote_ports
    assert postgres_port not in remote_ports, "the phase1 service talks to Postgres directly"

    # PgBouncer lists the service's connections as its clients for blueharvests
    seen_clients = set().union(*(s.client_ports for s in sampler.samples))
    assert own_client_ports & seen_clients, (own_client_ports, seen_clients)

    # Postgres' backends are PgBouncer's server connections, within its pool
    size = pool_size(urls["pgbouncer"])
    for s in sampler.samples:
        assert len(s.server_backend_pids) <= size
    busiest = max(sampler.samples, key=lambda s: len(s.server_backend_pids))
    assert busiest.server_backend_pids, "PgBouncer never opened a server connection"
    assert busiest.server_backend_pids <= busiest.app_backend_pids
    # after the burst, every backend of the database belongs to PgBouncer (the service
    # keeps its pool open: direct connections would show up here as strangers)
    last = sample_once(urls["pgbouncer"], urls["postgres"])
    assert last.app_backend_pids <= last.server_backend_pids, last
