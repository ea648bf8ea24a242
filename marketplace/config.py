"""Service configuration from environment variables.

Every knob the service reads lives here so a run's manifest can record it. The
architecture profile (phase0..phase3) is chosen on the command line, not here:
see :mod:`marketplace.profiles`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _env_optional_float(name: str) -> float | None:
    raw = os.environ.get(name)
    return float(raw) if raw else None


@dataclass(frozen=True)
class Settings:
    """Where the service finds its dependencies, read once at start.

    Environment variables:

    - ``LOADGATE_DATABASE_URL``: the Postgres primary, direct (phase0, writes, migrations).
    - ``LOADGATE_PGBOUNCER_URL``: PgBouncer in transaction mode (phase1+).
    - ``LOADGATE_REPLICA_URL``: the streaming replica (phase2+ reads).
    - ``LOADGATE_REDIS_URL``: Redis (rate limits, cache, job queue; phase1+).
    - ``LOADGATE_OSRM_URL``: OSRM HTTP API (batch routing).
    - ``LOADGATE_STRIPE_URL``: Stripe API base (the stack's mock).
    - ``LOADGATE_STRIPE_KEY``: Stripe secret key (default ``sk_test_loadgate``).
    - ``LOADGATE_AUTH_SECRET``: HS256 secret for bearer tokens, at least 32 bytes; required
      (no default: a public one would let anyone mint an admin token). ``loadgate stack
      up`` generates one per start.
    - ``LOADGATE_DB_ACQUIRE_TIMEOUT_S``: how long a request waits for a DB connection
      before answering 503 (default: the profile's, see ``docs/profiles.md``).
    - ``LOADGATE_WORKERS``: set by ``python -m marketplace`` for the workers, so each
      can size its share of the proxy's connections (phase1+).
    - ``LOADGATE_PAYOUT_DELAY_S``: overrides the seed's 60 s delay before a queued
      payout runs (§4.3); tests shorten it.
    - ``LOADGATE_RATE_LIMIT_PER_MIN``: requests per user per minute (default 600).
    - ``LOADGATE_BREAKER_RESET_S``: overrides the breakers' open period (seed: Stripe 60 s,
      OSRM 30 s); tests shorten it.
    - ``LOADGATE_ANALYTICS_REFRESH_S``: phase3 matview refresh period, 0 = only on demand
      (default 60).
    """

    database_url: str = "postgresql://loadgate:loadgate@127.0.0.1:5432/blueharvests"
    pgbouncer_url: str | None = None
    replica_url: str | None = None
    redis_url: str | None = None
    osrm_url: str | None = None
    stripe_url: str | None = None
    stripe_key: str = "sk_test_loadgate"
    auth_secret: str = field(default="", repr=False)
    db_acquire_timeout_s: float | None = None
    workers: int = 1
    rate_limit_per_min: int = 600
    analytics_refresh_s: float = 60.0
    breaker_reset_s: float | None = None
    payout_delay_s: float | None = None

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            database_url=env.get("LOADGATE_DATABASE_URL", cls.database_url),
            pgbouncer_url=env.get("LOADGATE_PGBOUNCER_URL") or None,
            replica_url=env.get("LOADGATE_REPLICA_URL") or None,
            redis_url=env.get("LOADGATE_REDIS_URL") or None,
            osrm_url=(env.get("LOADGATE_OSRM_URL") or "").rstrip("/") or None,
            stripe_url=(env.get("LOADGATE_STRIPE_URL") or "").rstrip("/") or None,
            stripe_key=env.get("LOADGATE_STRIPE_KEY", cls.stripe_key),
            auth_secret=env.get("LOADGATE_AUTH_SECRET", ""),
            db_acquire_timeout_s=_env_float("LOADGATE_DB_ACQUIRE_TIMEOUT_S", 0.0) or None,
            workers=max(1, int(env.get("LOADGATE_WORKERS", "1"))),
            rate_limit_per_min=int(env.get("LOADGATE_RATE_LIMIT_PER_MIN", "600")),
            analytics_refresh_s=_env_float("LOADGATE_ANALYTICS_REFRESH_S", 60.0),
            breaker_reset_s=_env_float("LOADGATE_BREAKER_RESET_S", 0.0) or None,
            payout_delay_s=_env_optional_float("LOADGATE_PAYOUT_DELAY_S"),
        )
