"""FastAPI dependencies: the worker's state, the verified caller, the rate limit.

Role checks live here so a route declares who may call it in its signature
(``Depends(role("farmer"))``) and cannot forget it. Every authenticated request is
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


def _principal(request: Request, state: AppState) -> Principal:
    try:
        token = parse_authorization(request.headers.get("authorization"))
        return verify_token(token, state.settings.auth_secret)
    except AuthError as exc:
        raise _unauthorized(str(exc)) from exc


def role(*allowed: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting only tokens whose role is in ``allowed`` (401/403 otherwise)."""

    async def dependency(request: Request) -> Principal:
        state = get_state(request)
        principal = _principal(request, state)
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
        principal = _principal(request, state)
        await enforce(state.limiter, f"user:{principal.profile_id}")
        return principal
    client = request.client.host if request.client else "unknown"
    await enforce(state.limiter, f"ip:{client}")
    return None


ID_MAX = 2**63 - 1
"""Largest bigint: bigger ids are answered 422 instead of a database overflow."""
