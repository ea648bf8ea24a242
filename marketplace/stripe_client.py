"""Stripe through the official SDK, async, pointed at the stack's Stripe mock.

Every call is counted and timed (metrics ``service="stripe"``) and goes through the
Stripe circuit breaker (transparent unless the profile turns breakers on). The SDK's
own network retries are off: a retried PaymentIntent creation against a mock that
ignores idempotency keys could charge twice, and the breaker must see each failure.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import stripe

from marketplace.breakers import Breakers
from marketplace.metrics import external_call

CURRENCY = "eur"
TEST_PAYMENT_METHOD = "pm_card_visa"


def to_cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal("1")))


class StripeGateway:
    """The few Stripe operations the marketplace needs."""

    def __init__(self, api_key: str, base_url: str | None, breakers: Breakers) -> None:
        kwargs: dict[str, Any] = {"http_client": stripe.HTTPXClient(), "max_network_retries": 0}
        if base_url:
            kwargs["base_addresses"] = {"api": base_url}
        self.client = stripe.StripeClient(api_key, **kwargs)
        self.breakers = breakers

    async def _call(self, operation: str, fn: Any, params: dict[str, Any], **opts: Any) -> Any:
        async def attempt() -> Any:
            with external_call("stripe", operation):
                return await fn(params=params, options=opts or None)

        return await self.breakers.call("stripe", attempt)

    async def find_or_create_customer(self, email: str, profile_id: int) -> str:
        """Seed §4.4's lookup: list by email, create when there is none."""
        found = await self._call(
            "customers.list", self.client.v1.customers.list_async, {"email": email, "limit": 1}
        )
        if found.data:
            return str(found.data[0].id)
        created = await self._call(
            "customers.create",
            self.client.v1.customers.create_async,
            {"email": email, "metadata": {"profile_id": str(profile_id)}},
        )
        return str(created.id)

    async def charge(self, amount_cents: int, customer_id: str, order_id: int) -> Any:
        """Create and confirm a PaymentIntent in one call (what localstripe supports)."""
        return await self._call(
            "payment_intents.create",
            self.client.v1.payment_intents.create_async,
            {
                "amount": amount_cents,
                "currency": CURRENCY,
                "customer": customer_id,
                "payment_method": TEST_PAYMENT_METHOD,
                "confirm": True,
                "metadata": {"order_id": str(order_id)},
            },
            idempotency_key=f"order-{order_id}",
        )

    async def payout(self, amount_cents: int, payout_id: int) -> Any:
        """A payout in eur (the only currency localstripe accepts for payouts)."""
        return await self._call(
            "payouts.create",
            self.client.v1.payouts.create_async,
            {
                "amount": amount_cents,
                "currency": CURRENCY,
                "metadata": {"payout_id": str(payout_id)},
            },
            idempotency_key=f"payout-{payout_id}",
        )

    async def list_payment_intents(self) -> list[Any]:
        """Every PaymentIntent (used by ``verify``); pages through the list."""
        out: list[Any] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = await self._call(
                "payment_intents.list", self.client.v1.payment_intents.list_async, dict(params)
            )
            out.extend(page.data)
            if not page.has_more or not page.data:
                return out
            params["starting_after"] = page.data[-1].id
