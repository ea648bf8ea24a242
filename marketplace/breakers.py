"""Circuit breakers for Stripe and OSRM (seed §5.5), on the purgatory library.

With breakers on (phase3) a dependency that keeps failing is cut off for a while
and callers go straight to their fallback instead of waiting on timeouts; with them
off every call goes through and failures surface directly. Thresholds follow the
seed: Stripe opens after 5 failures for 60 s, OSRM after 3 failures for 30 s.
Client errors (a declined card, a bad request) are not counted as failures.

Redis gets a breaker too (ours; the seed's §5.5 names only external APIs, but its
phase 3 keeps rate limits, the cache and the queue in one Redis): after 3 failures the
cache, the rate limiter and read-after-write stop asking Redis for 5 s and use their
fallbacks at once, instead of each request paying a connect or socket timeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import stripe
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from marketplace import metrics

T = TypeVar("T")

SETTINGS = {"stripe": (5, 60.0), "osrm": (3, 30.0), "redis": (3, 5.0)}
EXCLUDED: list[Any] = [stripe.CardError, stripe.InvalidRequestError]


class BreakerOpen(Exception):
    """The breaker is open: the call was not attempted."""


class Breakers:
    """The service's breakers; ``enabled=False`` makes them transparent."""

    def __init__(self, enabled: bool, reset_s: float | None = None) -> None:
        self.enabled = enabled
        self.reset_s = reset_s
        self.factory = AsyncCircuitBreakerFactory(exclude=EXCLUDED)
        self.factory.add_listener(self._on_event)
        for name in SETTINGS:
            metrics.BREAKER_STATE.labels(name).set(0)

    def _on_event(self, name: str, event_name: str, event: Any) -> None:
        if event_name == "state_changed":
            metrics.BREAKER_STATE.labels(name).set(metrics.BREAKER_STATES.get(event.state, 0))

    async def state(self, name: str) -> str:
        threshold, ttl = SETTINGS[name]
        brk = await self.factory.get_breaker(name, threshold, self.reset_s or ttl)
        return brk.context.state

    async def call(self, name: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` through breaker ``name``; raises :class:`BreakerOpen` when open."""
        if not self.enabled:
            return await fn()
        threshold, ttl = SETTINGS[name]
        brk = await self.factory.get_breaker(name, threshold, self.reset_s or ttl)
        try:
            async with brk:
                return await fn()
        except OpenedState as exc:
            raise BreakerOpen(f"{name} circuit breaker is open") from exc
