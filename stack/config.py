"""Settings of one stack: which provider, which services, and their knobs.

Defaults follow the scaling plan (seed): Stripe answers in 200-500 ms and
allows 100 requests/s; PgBouncer has §3.1's pool (1,000 server connections, a
120 s borrow timeout). The phase-0 wall of 15 connections is not here: it is the
``CONNECTION LIMIT`` of the service's own role (``marketplace/profiles.py``), so
Postgres' ``max_connections`` only has to fit PgBouncer's pool plus our own tools.
Every number and its source: ``docs/profiles.md``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Literal

from marketplace.profiles import PHASE1
from runconfig.constants import ProviderName
from stack.isolation import SidePlacement

NetworkMode = Literal["auto", "host", "bridge"]

DB_NAME = "blueharvests"
DB_USER = "loadgate"
DB_PASSWORD = "loadgate"
REPLICATION_USER = "replicator"
REPLICATION_PASSWORD = "replicator"
STRIPE_API_KEY = "sk_test_loadgate"

PGBOUNCER_POOL_SIZE = PHASE1.proxy_max_connections
"""Seed §3.1 ``max_connections = 1000``: server connections PgBouncer may open."""
# Seed §3.1 ``max_idle_connections = 100`` caps what the proxy keeps idle; PgBouncer
# has no such cap and keeps every idle server connection for server_idle_timeout
# (600 s), i.e. at least the seed's 100 -- never fewer warm connections than the seed's.
PGBOUNCER_QUERY_WAIT_TIMEOUT_S = round(PHASE1.db_acquire_timeout_s)
"""Seed §3.1 ``connection_borrow_timeout = 120`` (seconds a client may wait for a server)."""
PGBOUNCER_MAX_CLIENT_CONN = 2000
"""Seed §3.1 "Support 1,000+ concurrent connections": room for the service's clients
(up to the pool size) plus samplers and tools."""
PG_MAX_CONNECTIONS = PGBOUNCER_POOL_SIZE + 100
"""PgBouncer's pool plus 100 for replication, samplers, migrations and fixtures."""


@dataclass(frozen=True)
class StripeRealism:
    """How the Stripe mock imitates the real API under load (seed §1.1)."""

    latency_min_ms: float = 200.0
    latency_max_ms: float = 500.0
    rate_limit_per_s: float = 100.0
    """Requests per second before HTTP 429 ``rate_limit_error``; 0 disables."""

    @classmethod
    def off(cls) -> StripeRealism:
        """A Stripe mock that answers at once and never rate-limits."""
        return cls(latency_min_ms=0.0, latency_max_ms=0.0, rate_limit_per_s=0.0)


@dataclass(frozen=True)
class StackConfig:
    """Everything that decides how a stack is brought up."""

    provider: ProviderName = "auto"
    services: tuple[str, ...] | None = None
    """Services to start (dependencies are added); ``None`` = all non-optional."""
    with_replica: bool = False
    """Also start a hot-standby streaming replica of Postgres (phase 2+)."""
    pg_max_connections: int = PG_MAX_CONNECTIONS
    pgbouncer_pool_size: int = PGBOUNCER_POOL_SIZE
    pgbouncer_max_client_conn: int = PGBOUNCER_MAX_CLIENT_CONN
    stripe: StripeRealism = field(default_factory=StripeRealism)
    ports: dict[str, int] = field(default_factory=dict)
    """Fixed host ports by service name; the rest are picked free."""
    ready_timeout: float | None = None
    """Overrides every service's own readiness timeout (seconds)."""
    base_image: str = "debian:bookworm-slim"
    """Base image the containers provider builds the service images on."""
    network: NetworkMode = "auto"
    """Containers only: ``host`` where the engine has no bridge (CI here)."""
    profile: str | None = None
    """Marketplace architecture profile (phase0..phase3); ``None`` = no service."""
    service_workers: int = 2
    service_host: str = "127.0.0.1"
    """Address the marketplace service listens on and is reached at (local provider).
    Workers on other hosts need an address of this host they can route to; every other
    service stays on 127.0.0.1, reached only by the service and the harness."""
    """Worker processes of the marketplace service."""
    auth_secret: str = field(
        default_factory=lambda: secrets.token_urlsafe(32), repr=False, compare=False
    )
    """The service's token signing secret: new and random for every stack (no public
    default); the state file and the credentials writer get the same one."""
    placement: SidePlacement | None = field(default=None, compare=False)
    """Where the stack's processes or containers run (CPU set or cgroup) when the load
    generator shares this host (:mod:`stack.isolation`); ``None`` = anywhere."""
