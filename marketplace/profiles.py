"""Architecture profiles: the seed's phases as data, not code forks.

Each profile is a frozen set of feature flags; the code asks the flags, never the
profile name. Phases are cumulative (phase2 = phase1 + more), which is also how
migrations are selected: a migration declares the lowest profile that needs it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

RateLimiter = Literal["db_table", "redis_sliding_window"]
DbRoute = Literal["direct", "pgbouncer"]


@dataclass(frozen=True)
class Profile:
    """Feature flags of one architecture profile (seed section in brackets)."""

    name: str
    level: int
    db_route: DbRoute = "direct"
    """phase0 talks to Postgres directly; phase1+ through PgBouncer (§3.1)."""
    db_connection_cap: int | None = 15
    """Total server connections across all workers (phase0: the seed's 15), None = pool default."""
    rate_limiter: RateLimiter = "db_table"
    """§3.2: 3 DB operations per request vs a Redis sorted-set sliding window."""
    scaling_indexes: bool = False
    """§3.3 indexes (applied by the phase1 migration)."""
    paginate_products: bool = False
    """§3.5 cursor pagination; False = the whole catalogue in one answer."""
    read_replica: bool = False
    """§4.1 reads on the replica, read-after-write on the primary for 5 s."""
    read_after_write_s: float = 5.0
    cache: bool = False
    """§4.2 Redis cache with the seed's keys and TTLs."""
    async_jobs: bool = False
    """§4.3 batch generation and payouts on an arq queue (202 + job id)."""
    stripe_customer_cache: bool = False
    """§4.4 Stripe customer id from Redis/DB before asking Stripe."""
    circuit_breakers: bool = False
    """§5.5 breakers on Stripe and OSRM with fallbacks."""
    materialized_views: bool = False
    """§5.4 admin analytics from materialized views."""
    partitioned_orders: bool = False
    """§5.3 orders partitioned by month (phase3 migration)."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


PHASE0 = Profile(name="phase0", level=0)
PHASE1 = replace(
    PHASE0,
    name="phase1",
    level=1,
    db_route="pgbouncer",
    db_connection_cap=None,
    rate_limiter="redis_sliding_window",
    scaling_indexes=True,
    paginate_products=True,
)
PHASE2 = replace(
    PHASE1,
    name="phase2",
    level=2,
    read_replica=True,
    cache=True,
    async_jobs=True,
    stripe_customer_cache=True,
)
PHASE3 = replace(
    PHASE2,
    name="phase3",
    level=3,
    circuit_breakers=True,
    materialized_views=True,
    partitioned_orders=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (PHASE0, PHASE1, PHASE2, PHASE3)}


class UnknownProfileError(ValueError):
    """Raised for a profile name that is not one of :data:`PROFILES`."""


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise UnknownProfileError(f"unknown profile {name!r} (known: {known})") from None
