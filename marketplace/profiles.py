"""Architecture profiles: the seed's phases as data, not code forks.

Each profile is a frozen set of feature flags and capacity numbers; the code asks
the profile, never its name. Phases are cumulative (phase2 = phase1 + more). Every
number here is the seed's where it gives one (section beside it) and otherwise our
choice with the reason written down in ``docs/profiles.md``, which has one table of
all of them: a verdict about phase N is only about the plan if the model runs with
the plan's numbers.

Which migrations a profile gets is decided by the migrations' own
``-- min_profile`` headers (``marketplace.migrate``), not by flags here; only
``skip_migrations`` leaves one out (``loadgate reproduce indexes``).

Single-flag overrides (``loadgate reproduce``): ``LOADGATE_PROFILE_OVERRIDES`` holds a
JSON object of flags, e.g. ``{"rate_limiter": "db_table"}``, applied by
:func:`get_profile` in every process that asks for a profile (the service, its
migrations, the fixture loader, the stack), so "phase1 but with the DB-table rate
limiter" is one flag away from phase1 and nothing else changes. Validated against the
fields below; the run's manifest records it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Final, Literal, get_args

from pydantic import TypeAdapter, ValidationError

RateLimiter = Literal["db_table", "redis_sliding_window"]
DbRoute = Literal["direct", "pgbouncer"]

ProfileName = Literal["phase0", "phase1", "phase2", "phase3"]
"""The profiles' names: the one list the service, the stack and the harness's CLI and
phase config check against (``runconfig.constants`` re-exports it for the harness)."""
PROFILE_NAMES: Final[tuple[str, ...]] = get_args(ProfileName)
DEFAULT_PROFILE: Final[ProfileName] = "phase0"
"""The profile of a service started without one: today's architecture (seed §1). Also
the migrations a fixture load applies on its own: the lowest profile's, so a load never
adds a higher profile's indexes under a service that runs a lower one."""

EDGE_ROLE = "edge_functions"
"""The Postgres role phase0 connects as; its ``CONNECTION LIMIT`` is the seed's 15."""


@dataclass(frozen=True)
class Profile:
    """Flags and capacity numbers of one architecture profile (seed section in brackets)."""

    name: str
    level: int
    db_route: DbRoute = "direct"
    """phase0 talks to Postgres directly; phase1+ through PgBouncer (§3.1)."""
    db_connection_cap: int | None = 15
    """§1.1/§1.2: 15 server connections in total, enforced by Postgres itself as the
    ``CONNECTION LIMIT`` of :data:`EDGE_ROLE` (migration 0006); None = no such role."""
    db_acquire_timeout_s: float = 2.0
    """How long a request waits for a DB connection before 503. phase0: ours (seed
    silent; a Supabase edge function fails fast, 2 s keeps a wait visible); phase1+:
    the proxy's ``connection_borrow_timeout = 120`` (§3.1)."""
    proxy_max_connections: int = 1000
    """§3.1 ``max_connections = 1000``: PgBouncer's server connections to Postgres
    (``stack.config.PGBOUNCER_POOL_SIZE`` is this number)."""
    rate_limiter: RateLimiter = "db_table"
    """§3.2: 3 DB operations per request vs a Redis sorted-set sliding window."""
    paginate_products: bool = False
    """§3.5 cursor pagination, 50 a page; False = the whole catalogue in one answer."""
    read_replica: bool = False
    """§4.1 reads on the replica, read-after-write on the primary for 5 s."""
    read_after_write_s: float = 5.0
    """§4.1 "Use primary for 5 seconds after write"."""
    cache: bool = False
    """§4.2 Redis cache with the seed's keys and TTLs (``marketplace.cache.TTL_S``)."""
    async_jobs: bool = False
    """§4.3 batch generation and payouts on an arq queue (202 + job id)."""
    batch_concurrency: int = 5
    """§4.3 batch-generation worker ``concurrency: 5`` (per service worker process)."""
    batch_attempts: int = 3
    """§4.3 ``attempts: 3, backoff exponential 5000 ms`` for batch generation."""
    payout_concurrency: int = 3
    """§4.3 payout worker ``concurrency: 3``."""
    payout_attempts: int = 5
    """§4.3 payouts ``attempts: 5``."""
    payout_delay_s: float = 60.0
    """§4.3 payouts ``delay: 60000`` ms before processing."""
    stripe_customer_cache: bool = False
    """§4.4 Stripe customer id from Redis/DB before asking Stripe."""
    circuit_breakers: bool = False
    """§5.5 breakers on Stripe and OSRM with fallbacks (``marketplace.breakers``)."""
    materialized_views: bool = False
    """§5.4 admin analytics from materialized views."""
    racy_cart_delete: bool = False
    """Test-only, never set by a profile: checkout reads the cart without locking its lines
    and then deletes *every* line of the cart, so an add that commits in between is
    deleted without being ordered (the lost update of issue 21). ``loadgate verify --run``
    must catch it; it exists so that a real run can show the check failing. The window is
    widened to ``checkout.RACY_WINDOW_S`` so that a short run shows it every time."""
    skip_migrations: tuple[str, ...] = ()
    """Migration versions left out (e.g. ``("0002",)``: phase1 without the §3.3 indexes).
    Never set by a profile; only by an override, to isolate one change."""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def primary_pool_size(self, workers: int) -> int:
        """Per-worker pool of the service's connections to its primary route.

        phase0: each worker may try up to the full cap -- Postgres refuses the 16th
        connection of the role, whichever worker asks (not ``15 // workers``).
        phase1+: the service is the proxy's client; the workers' pools together
        may hold as many connections as the proxy serves, so waiting happens at the
        proxy (``cl_waiting``), as in the seed, not in a pool of our own.
        """
        if self.db_connection_cap is not None:
            return self.db_connection_cap
        return max(1, self.proxy_max_connections // max(1, workers))


PHASE0 = Profile(name=PROFILE_NAMES[0], level=0)
PHASE1 = replace(
    PHASE0,
    name=PROFILE_NAMES[1],
    level=1,
    db_route="pgbouncer",
    db_connection_cap=None,
    db_acquire_timeout_s=120.0,
    rate_limiter="redis_sliding_window",
    paginate_products=True,
)
PHASE2 = replace(
    PHASE1,
    name=PROFILE_NAMES[2],
    level=2,
    read_replica=True,
    cache=True,
    async_jobs=True,
    stripe_customer_cache=True,
)
PHASE3 = replace(
    PHASE2,
    name=PROFILE_NAMES[3],
    level=3,
    circuit_breakers=True,
    materialized_views=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (PHASE0, PHASE1, PHASE2, PHASE3)}


OVERRIDES_ENV = "LOADGATE_PROFILE_OVERRIDES"
"""JSON object of profile flags applied on top of the named profile (see module doc)."""
_FIXED = ("name", "level")


class UnknownProfileError(ValueError):
    """Raised for a profile name that is not one of :data:`PROFILES`."""


class ProfileOverrideError(UnknownProfileError):
    """An invalid ``LOADGATE_PROFILE_OVERRIDES``; callers reject it like a bad name."""


def overridable_flags() -> list[str]:
    return [f.name for f in fields(Profile) if f.name not in _FIXED]


def apply_overrides(profile: Profile, overrides: Mapping[str, object]) -> Profile:
    """``profile`` with ``overrides`` applied, each checked against the field's type."""
    unknown = sorted(set(overrides) - set(overridable_flags()))
    if unknown:
        raise ProfileOverrideError(
            f"{OVERRIDES_ENV}: unknown flag {unknown[0]!r} "
            f"(flags: {', '.join(overridable_flags())})"
        )
    try:
        return TypeAdapter(Profile).validate_python({**asdict(profile), **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ProfileOverrideError(f"{OVERRIDES_ENV}: {key}: {first['msg']}") from None


def overrides_from_env(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The overrides in the environment ({} when unset or empty)."""
    raw = (os.environ if environ is None else environ).get(OVERRIDES_ENV, "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProfileOverrideError(f"{OVERRIDES_ENV}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ProfileOverrideError(f'{OVERRIDES_ENV}: give a JSON object, e.g. {{"cache": true}}')
    return data


def get_profile(name: str) -> Profile:
    """The named profile, with the environment's overrides applied (if any)."""
    try:
        profile = PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise UnknownProfileError(f"unknown profile {name!r} (known: {known})") from None
    overrides = overrides_from_env()
    return apply_overrides(profile, overrides) if overrides else profile
