"""Bearer-token auth: HS256 JWTs carrying a profile id and a role.

Fixtures mint tokens with :func:`issue_token` and the same secret, so load tests
never log in. Every request verifies signature and expiry; the role in the token
gates farmer/driver/admin endpoints, and the profile id scopes consumer data.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
ROLES = ("consumer", "farmer", "driver", "admin")
DEFAULT_SECRET = "loadgate-dev-secret"


def default_secret() -> str:
    return os.environ.get("LOADGATE_AUTH_SECRET", DEFAULT_SECRET)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the verified content of a token."""

    profile_id: int
    role: str


class AuthError(Exception):
    """A missing, malformed, forged or expired token (answered with 401)."""


def issue_token(
    profile_id: int, role: str, secret: str | None = None, ttl_s: int = 24 * 3600
) -> str:
    """A signed token for ``profile_id`` acting as ``role``, valid ``ttl_s`` seconds."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    now = int(time.time())
    claims = {"sub": str(profile_id), "role": role, "iat": now, "exp": now + int(ttl_s)}
    return jwt.encode(claims, secret or default_secret(), algorithm=ALGORITHM)


def verify_token(token: str, secret: str) -> Principal:
    """Check signature and expiry; the algorithm is pinned so 'none' tokens fail."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
        profile_id = int(claims["sub"])
        role = str(claims.get("role", ""))
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise AuthError(str(exc) or "invalid token") from exc
    if role not in ROLES:
        raise AuthError("unknown role in token")
    return Principal(profile_id=profile_id, role=role)


def parse_authorization(header: str | None) -> str:
    """The token from an ``Authorization: Bearer <token>`` header."""
    if not header:
        raise AuthError("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed authorization header")
    return token.strip()
