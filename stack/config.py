"""Settings of one stack: which provider, which services, and their knobs.

Defaults follow the scaling plan (seed): Stripe answers in 200-500 ms and
allows 100 requests/s; the phase-0 database allows 15 connections from the
service (the service's own cap, not Postgres' ``max_connections``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Literal

ProviderName = Literal["auto", "local", "containers"]
NetworkMode = Literal["auto", "host", "bridge"]

DB_NAME = "blueharvests"
DB_USER = "loadgate"
DB_PASSWORD = "loadgate"
REPLICATION_USER = "replicator"
REPLICATION_PASSWORD = "replicator"
STRIPE_API_KEY = "sk_test_loadgate"


@dataclass(frozen=True)
class StripeRealism:
    """How the Stripe mock imitates the real API under load (seed §1.1)."""

    latency_min_ms: float = 200.0
    latency_max_ms: float = 500.0
    rate_limit_per_s: float = 100.0
    """Requests per second before HTTP 429 ``rate_limit_error``; 0 disables."""

    @property
    def latency_enabled(self) -> bool:
        return self.latency_max_ms > 0

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
    pg_max_connections: int = 200
    pgbouncer_pool_size: int = 20
    pgbouncer_max_client_conn: int = 2000
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
    """Worker processes of the marketplace service."""
    auth_secret: str = field(
        default_factory=lambda: secrets.token_urlsafe(32), repr=False, compare=False
    )
    """The service's token signing secret: new and random for every stack (no public
    default); the state file and the credentials writer get the same one."""
