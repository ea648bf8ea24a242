"""Bearer-token auth: HS256 JWTs carrying a profile id and a role.

Fixtures mint tokens with :func:`issue_token` and the service's secret, so load
tests never log in. Every request verifies signature and expiry here; who the
caller *is* (that the profile exists, and its role) is then checked against the
database by :mod:`marketplace.identities` -- a token only proves that whoever holds
the secret vouched for a profile id at some point.

There is no default secret: a public default would let anyone mint an admin token
for any deployment that forgot to set one. Each stack start generates its own
(:func:`generate_secret`) and hands it to the service (``LOADGATE_AUTH_SECRET``)
and to the credentials writer; the service refuses to start without one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
ROLES = ("consumer", "farmer", "driver", "admin")
SECRET_ENV = "LOADGATE_AUTH_SECRET"
MIN_SECRET_BYTES = 32
"""RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits)."""
BIGINT_MAX = 2**63 - 1
"""Profile ids are bigints: a bigger subject is refused here, not overflowed in SQL."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a verified token whose profile exists with this role."""

    profile_id: int
    role: str


class AuthError(Exception):
    """A missing, malformed, forged or expired token, or an unknown user (answered 401)."""


class SecretError(ValueError):
    """No usable signing secret; the message names the fix."""


def generate_secret() -> str:
    """A fresh random signing secret (256 bits, URL-safe), one per stack start."""
    return secrets.token_urlsafe(MIN_SECRET_BYTES)


def require_secret(secret: str | None, source: str = SECRET_ENV) -> str:
    """``secret`` if it is long enough to sign with, else :class:`SecretError`.

    ``source`` names where the secret was expected, so the error says what to set.
    """
    if not secret:
        raise SecretError(
            f"{source} is not set: give the service and the credentials writer the same "
            f"random secret of at least {MIN_SECRET_BYTES} bytes ({_HOW_TO_MAKE_ONE})"
        )
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SecretError(
            f"{source} is {len(secret.encode())} bytes: HS256 needs at least "
            f"{MIN_SECRET_BYTES} bytes ({_HOW_TO_MAKE_ONE})"
        )
    return secret


_HOW_TO_MAKE_ONE = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def issue_token(profile_id: int, role: str, secret: str, ttl_s: int = 24 * 3600) -> str:
    """A signed token for ``profile_id`` acting as ``role``, valid ``ttl_s`` seconds."""
    return issue_tokens([(profile_id, role)], secret, ttl_s)[0]


def issue_tokens(
    subjects: Iterable[tuple[int, str]], secret: str, ttl_s: int = 24 * 3600
) -> list[str]:
    """:func:`issue_token` for many ``(profile_id, role)`` at once, byte for byte.

    Why not a loop over ``jwt.encode``: it costs ~45 us a token (100k consumers:
    4.5 s of a fixture load). Here the header is encoded once, the HMAC is keyed
    once and copied per token, and the claims (an int and a known role) are
    formatted without a JSON encoder: ~5 us a token. The result is what PyJWT makes
    of the same claims (compact JSON, sorted header), which a test checks.
    """
    key = require_secret(secret).encode()
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    now = int(time.time())
    exp = now + int(ttl_s)
    header = _b64(json.dumps({"alg": ALGORITHM, "typ": "JWT"}, separators=(",", ":")).encode())
    tokens = []
    for profile_id, role in subjects:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        claims = f'{{"sub":"{int(profile_id)}","role":"{role}","iat":{now},"exp":{exp}}}'
        signing_input = f"{header}.{_b64(claims.encode())}".encode()
        mac = keyed.copy()
        mac.update(signing_input)
        tokens.append(f"{signing_input.decode()}.{_b64(mac.digest())}")
    return tokens


def _b64(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def verify_token(token: str, secret: str) -> Principal:
    """Check signature and expiry; the algorithm is pinned so 'none' tokens fail.

    The returned principal is what the token *claims*; callers confirm it against
    the database before trusting the role (see :mod:`marketplace.identities`).
    """
    if not secret:
        raise AuthError("the service has no signing secret")
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
    if not 1 <= profile_id <= BIGINT_MAX:
        raise AuthError("invalid subject in token")
    return Principal(profile_id=profile_id, role=role)


def parse_authorization(header: str | None) -> str:
    """The token from an ``Authorization: Bearer <token>`` header."""
    if not header:
        raise AuthError("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed authorization header")
    return token.strip()
