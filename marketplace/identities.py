"""Who a verified token belongs to: profile id -> role, from the ``profiles`` table.

A signature only proves that the token was minted with the secret; the account may
not exist (a token for a deleted profile, or for an id that was never created, used
to reach the handlers and fail there with a 500) and its role may have changed since
the token was issued. So the database is the authority on existence and role.

Cost, the choice written down: asking the database on every request would add a
round trip (and, in phase 0, a scarce connection) to every hot path. Instead each
worker process keeps an in-process TTL cache of the answers:

- a known profile's role is trusted for :data:`KNOWN_TTL_S` (5 min). That bounds how
  long a deleted account or a changed role keeps working, as an access token's
  lifetime would (the seed's Supabase tokens are trusted for their whole lifetime,
  with no lookup at all), and keeps the extra load at one primary-key lookup per
  active user per worker per 5 minutes: 1,500 users x 2 workers / 300 s = 10
  indexed lookups/s at the phase-1 gate load, a few percent of its requests
  (a 60 s TTL would be five times that);
- an unknown id is remembered for :data:`UNKNOWN_TTL_S` (5 s), so a flood of tokens
  for missing users costs one query per id per 5 s, while a profile created moments
  ago is accepted soon after;
- concurrent requests for the same uncached id share one lookup (single flight).

In-process rather than Redis: a Redis GET is itself a network round trip per
request, and the in-process cache needs nothing phase 0 does not have. Lookups read
where the profile's reads go (the replica from phase 2); an id missing there is
asked of the primary too, so a profile newer than the replica's lag is not refused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

KNOWN_TTL_S = 300.0
UNKNOWN_TTL_S = 5.0
MAX_ENTRIES = 200_000
"""About 20 MB per worker at most; a phase-4 catalogue of users fits."""

LOOKUPS = Counter(
    "marketplace_auth_lookups_total",
    "Identity checks of verified tokens, by where the answer came from",
    ["source"],
)
"""``source``: ``cache`` (no DB work) or ``database`` (one primary-key lookup)."""


@dataclass(frozen=True)
class _Entry:
    role: str | None
    expires: float


class Identities:
    """The (profile id -> role or None) answers of the database, cached per worker."""

    def __init__(
        self,
        db: Any,
        known_ttl_s: float = KNOWN_TTL_S,
        unknown_ttl_s: float = UNKNOWN_TTL_S,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.known_ttl_s = known_ttl_s
        self.unknown_ttl_s = unknown_ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[int, _Entry] = {}
        self._inflight: dict[int, asyncio.Future[str | None]] = {}

    async def role_of(self, profile_id: int) -> str | None:
        """The profile's role, or None when no such profile exists."""
        entry = self._entries.get(profile_id)
        if entry is not None and entry.expires > self.clock():
            LOOKUPS.labels("cache").inc()
            return entry.role
        pending = self._inflight.get(profile_id)
        if pending is not None:
            LOOKUPS.labels("cache").inc()
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._inflight[profile_id] = future
        try:
            role = await self._lookup(profile_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            del self._inflight[profile_id]
        future.set_result(role)
        self._remember(profile_id, role)
        return role

    def _remember(self, profile_id: int, role: str | None) -> None:
        ttl = self.known_ttl_s if role is not None else self.unknown_ttl_s
        self._entries.pop(profile_id, None)  # re-insert: dict order is age order
        self._entries[profile_id] = _Entry(role, self.clock() + ttl)
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]

    async def _lookup(self, profile_id: int) -> str | None:
        LOOKUPS.labels("database").inc()
        async with await self.db.read(profile_id) as conn:
            role = await _select_role(conn, profile_id)
        if role is None and getattr(self.db, "replica", None) is not None:
            async with self.db.write() as conn:  # newer than the replica's lag?
                role = await _select_role(conn, profile_id)
        return role


async def _select_role(conn: Any, profile_id: int) -> str | None:
    cur = await conn.execute("SELECT role FROM profiles WHERE id = %s", (profile_id,))
    row = await cur.fetchone()
    return None if row is None else str(row["role"])
