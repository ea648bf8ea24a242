"""Everything one worker process holds: built from settings + profile at startup.

The profile's flags decide which collaborators are real and which are pass-through
(e.g. ``Cache(None)`` when caching is off), so request handlers never branch on the
profile name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from marketplace.auth import require_secret
from marketplace.breakers import Breakers
from marketplace.cache import Cache
from marketplace.config import Settings
from marketplace.db import Database
from marketplace.identities import Identities
from marketplace.profiles import Profile
from marketplace.ratelimit import DbTableLimiter, FallbackLimiter, RedisSlidingWindowLimiter
from marketplace.routing import Router
from marketplace.stripe_client import StripeGateway

log = logging.getLogger("marketplace")

REDIS_TIMEOUT_S = 1.0
"""Connect and reply timeout of the service's Redis calls (ours: Redis answers in well
under a millisecond here; a second means it is gone or frozen)."""


@dataclass
class AppState:
    settings: Settings
    profile: Profile
    redis: Any
    db: Database
    cache: Cache
    limiter: Any
    breakers: Breakers
    stripe: StripeGateway
    router: Router
    identities: Identities
    jobs: Any = None
    """:class:`marketplace.jobs.JobQueue` when the profile runs async jobs."""


def build_state(settings: Settings, profile: Profile) -> AppState:
    require_secret(settings.auth_secret)  # no worker serves tokens it cannot verify
    needs_redis = (
        profile.rate_limiter == "redis_sliding_window" or profile.cache or profile.async_jobs
    )
    if needs_redis and not settings.redis_url:
        raise RuntimeError(f"profile {profile.name} needs LOADGATE_REDIS_URL")
    # Bounded waits: a frozen Redis must cost a request at most this, never hang it.
    redis = (
        aioredis.from_url(
            settings.redis_url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        if settings.redis_url
        else None
    )
    breakers = Breakers(profile.circuit_breakers, settings.breaker_reset_s)
    db = Database(settings, profile, redis=redis, breakers=breakers)
    limit = settings.rate_limit_per_min
    limiter: Any = DbTableLimiter(db, limit)
    if profile.rate_limiter == "redis_sliding_window":
        limiter = RedisSlidingWindowLimiter(redis, limit)
        if profile.circuit_breakers:  # phase3: degrade instead of failing (seed §5.5)
            limiter = FallbackLimiter(limiter, breakers)
    return AppState(
        settings=settings,
        profile=profile,
        redis=redis,
        db=db,
        cache=Cache(redis if profile.cache else None, breakers),
        limiter=limiter,
        breakers=breakers,
        stripe=StripeGateway(settings.stripe_key, settings.stripe_url, breakers),
        router=Router(settings.osrm_url, breakers),
        identities=Identities(db),
    )
