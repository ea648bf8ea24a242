"""Bounds on what one request may make the service hold or charge (issue 21).

- Request headers: at most :data:`MAX_HEADER_BYTES` in total and :data:`MAX_HEADERS`
  fields, else 431 (RFC 6585). The seed is silent; the values are ours
  (``docs/profiles.md``). uvicorn's httptools parser (the one installed, and faster
  than h11) has no header limit of its own, so this ASGI middleware checks the parsed
  headers before any route, rate limiter or database call runs.
- Order totals: at most :data:`MAX_ORDER_TOTAL`, Stripe's cap on one charge
  (99,999,999 in the currency's smallest unit), well inside the orders table's
  ``numeric(12,2)``: a bigger cart is a 400 ``amount_too_large``, not a numeric
  overflow (500) or a charge Stripe would refuse.
"""

from __future__ import annotations

from decimal import Decimal

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from marketplace.errors import error_body

MAX_HEADER_BYTES = 16 * 1024
"""16 KiB of names and values: h11's default ``max_incomplete_event_size`` and Node's
``--max-http-header-size``; a bearer token and a browser's headers use < 2 KiB."""
MAX_HEADERS = 100
"""Header fields per request: the default of Apache's ``LimitRequestFields``."""
STRIPE_MAX_AMOUNT_CENTS = 99_999_999
"""Stripe: "the amount value supports up to eight digits" (EUR 999,999.99)."""
MAX_ORDER_TOTAL = Decimal(STRIPE_MAX_AMOUNT_CENTS) / 100


class HeaderLimits:
    """ASGI middleware: 431 for a request with too many or too large headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope.get("headers") or []
            size = sum(len(k) + len(v) for k, v in headers)
            if len(headers) > MAX_HEADERS or size > MAX_HEADER_BYTES:
                body = error_body(
                    "headers_too_large",
                    f"request headers exceed {MAX_HEADERS} fields or {MAX_HEADER_BYTES} bytes",
                )
                await JSONResponse(body, status_code=431)(scope, receive, send)
                return
        await self.app(scope, receive, send)
