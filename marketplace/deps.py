"""FastAPI dependencies: the worker's state, the verified caller, the rate limit.

Role checks live here so a route declares who may call it in its signature
(``Depends(role("farmer"))``) and cannot forget it. A caller is a valid token *and*
an existing profile whose role in the database is the token's (see
:mod:`marketplace.identities` for what that costs). Every authenticated request is
rate-limited per user; anonymous catalogue reads per client address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from marketplace.auth import AuthError, Principal, parse_authorization, verify_token
from marketplace.errors import ApiError
from marketplace.ratelimit import enforce
from marketplace.state import AppState


def get_state(request: Request) -> AppState:
    return request.app.state.market


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


async def _principal(request: Request, state: AppState) -> Principal:
    """The token's principal, confirmed against the database (401 otherwise)."""
    try:
        token = parse_authorization(request.headers.get("authorization"))
        claimed = verify_token(token, state.settings.auth_secret)
    except AuthError as exc:
        raise _unauthorized(str(exc)) from exc
    actual = await state.identities.role_of(claimed.profile_id)
    if actual is None:
        raise _unauthorized("unknown user")
    if actual != claimed.role:
        # A token minted before a role change (or for the wrong role): the database is
        # the authority, and a stale token must not keep its old powers.
        raise _unauthorized("the token's role is not the account's: get a new token")
    return claimed


def role(*allowed: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting only tokens whose role is in ``allowed`` (401/403 otherwise)."""

    async def dependency(request: Request) -> Principal:
        state = get_state(request)
        principal = await _principal(request, state)
        if principal.role not in allowed:
            raise ApiError(403, "forbidden", f"requires role {' or '.join(allowed)}")
        await enforce(state.limiter, f"user:{principal.profile_id}")
        request.state.principal = principal
        return principal

    return dependency


async def optional_principal(request: Request) -> Principal | None:
    """Catalogue reads: a token is optional but, when sent, must be valid."""
    state = get_state(request)
    if request.headers.get("authorization"):
        principal = await _principal(request, state)
        await enforce(state.limiter, f"user:{principal.profile_id}")
        return principal
    client = request.client.host if request.client else "unknown"
    await enforce(state.limiter, f"ip:{client}")
    return None


ID_MAX = 2**63 - 1
"""Largest bigint: bigger ids are answered 422 instead of a database overflow."""
