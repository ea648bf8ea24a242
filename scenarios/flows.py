"""What each persona does, as plain functions over a :class:`Session`.

Flows are written once and used two ways: by the Locust persona users of
the closed model (with think time between steps) and by the open model's
arrival driver (one flow per arrival, no think time). Requests are named by
route template (``/products/[id]``) so statistics group by endpoint, not
by id.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Session:
    """One persona's identity and client, and how it pauses between steps."""

    client: Any
    """A Locust ``FastHttpSession`` (or anything with its ``request`` signature)."""
    persona: str
    token: str
    profile_id: int
    rng: random.Random
    think: Callable[[], None] = lambda: None
    intended_start: float | None = None
    """Open model: when this flow's arrival was scheduled (epoch seconds)."""
    known_products: list[int] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        name: str,
        json: Any = None,
        expected: tuple[int, ...] = (),
    ) -> Any:
        """One request; ``expected`` statuses are business outcomes, not failures.

        A checkout of an item that sold out meanwhile (409) is what a real
        shop answers, and the user reacts to it; counting it as a failure
        would charge the system with the scenario's own stock dynamics.
        Only 4xx can be expected: 429 and 5xx always count as errors.
        """
        context: dict[str, Any] = {"persona": self.persona}
        if self.intended_start is not None:
            # Only the flow's first request waited for its arrival slot.
            context["intended_start"] = self.intended_start
            self.intended_start = None
        kwargs = {
            "name": name,
            "json": json,
            "context": context,
            "headers": {"Authorization": f"Bearer {self.token}"},
        }
        if not expected:
            return self.client.request(method, path, **kwargs)
        with self.client.request(method, path, catch_response=True, **kwargs) as response:
            if response.status_code in expected and 400 <= response.status_code < 429:
                response.success()
            return response

    def get_json(self, path: str, name: str) -> Any:
        response = self.request("GET", path, name)
        return _json(response)


def _json(response: Any) -> Any:
    if not 200 <= getattr(response, "status_code", 0) < 300:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _remember_products(session: Session, page: Any) -> None:
    if isinstance(page, dict):
        ids = [p["id"] for p in page.get("products", []) if isinstance(p, dict) and "id" in p]
        if ids:
            session.known_products = ids[:200]


def shopper(session: Session) -> None:
    """Browse the catalogue, search, look at a few products."""
    page = session.get_json("/products?limit=50", "/products")
    _remember_products(session, page)
    session.think()
    if isinstance(page, dict) and page.get("next_cursor"):
        session.get_json(f"/products?limit=50&cursor={page['next_cursor']}", "/products")
        session.think()
    term = session.rng.choice(["apple", "carrot", "honey", "egg", "kale", "cheese", "bread"])
    session.get_json(f"/products/search?q={term}", "/products/search")
    session.think()
    for product_id in session.rng.sample(
        session.known_products, min(2, len(session.known_products))
    ):
        session.get_json(f"/products/{product_id}", "/products/[id]")
        session.think()


MIN_BASKET_EUR = 30.0
"""The highest market minimum in the fixtures: buyers fill carts up to it."""


def buyer(session: Session) -> None:
    """Fill a cart up to the market minimum, check out with credits, see the orders."""
    if not session.known_products:
        _remember_products(session, session.get_json("/products?limit=50", "/products"))
        session.think()
    if not session.known_products:
        return
    cart: Any = None
    for _ in range(8):  # bounded: a few items, until the basket passes the minimum
        product_id = session.rng.choice(session.known_products)
        session.request(
            "POST",
            "/cart/items",
            "/cart/items",
            json={"product_id": product_id, "quantity": session.rng.randint(1, 3)},
        )
        session.think()
        cart = session.get_json("/cart", "/cart")
        if isinstance(cart, dict) and cart.get("subtotal", 0) >= MIN_BASKET_EUR:
            break
    response = session.request(
        "POST", "/checkout", "/checkout", json={"use_credits": True}, expected=(409,)
    )
    if getattr(response, "status_code", 0) == 409:
        _empty_cart(session)  # an item sold out meanwhile: start over, as a shopper would
        return
    order = _json(response)
    session.think()
    session.get_json("/orders", "/orders")
    order_id = order.get("order_id") if isinstance(order, dict) else None
    if order_id:
        session.think()
        session.get_json(f"/orders/{order_id}", "/orders/[id]")


def _empty_cart(session: Session) -> None:
    cart = session.get_json("/cart", "/cart")
    items = cart.get("items", []) if isinstance(cart, dict) else []
    for item in items[:20]:
        session.request(
            "DELETE", f"/cart/items/{item['product_id']}", "/cart/items/[id]", expected=(404,)
        )


def farmer(session: Session) -> None:
    """Review own products; restock one and nudge its price."""
    data = session.get_json("/farmer/products", "/farmer/products")
    products = data.get("products", []) if isinstance(data, dict) else []
    session.think()
    if products:
        product = session.rng.choice(products)
        stock = int(product.get("stock_quantity") or 0) + session.rng.randint(20, 200)
        update: dict[str, Any] = {"stock_quantity": stock}
        if product.get("price") is not None:
            price = float(product["price"]) * session.rng.uniform(0.95, 1.05)
            update["price"] = f"{max(0.5, price):.2f}"
        session.request(
            "PATCH", f"/farmer/products/{product['id']}", "/farmer/products/[id]", json=update
        )


def driver(session: Session) -> None:
    """Find a delivery batch, claim it, work through its stops."""
    data = session.get_json("/driver/batches", "/driver/batches")
    batches = data.get("batches", []) if isinstance(data, dict) else []
    session.think()
    pending = [b for b in batches if b.get("status") == "pending"]
    if not pending:
        return
    batch_id = session.rng.choice(pending)["id"]
    claim = session.request(  # 409: another driver was quicker
        "POST", f"/driver/batches/{batch_id}/claim", "/driver/batches/[id]/claim", expected=(409,)
    )
    if getattr(claim, "status_code", 0) != 200:
        return
    session.think()
    detail = session.get_json(f"/driver/batches/{batch_id}", "/driver/batches/[id]")
    stops = detail.get("stops", []) if isinstance(detail, dict) else []
    for stop in stops[:5]:
        session.think()
        session.request(
            "PATCH",
            f"/driver/batches/{batch_id}/stops/{stop['id']}",
            "/driver/batches/[id]/stops/[id]",
            json={"status": "delivered"},
        )


def admin(session: Session) -> None:
    """Open the analytics dashboards."""
    session.get_json("/admin/analytics/daily-revenue", "/admin/analytics/daily-revenue")
    session.think()
    session.get_json("/admin/analytics/product-performance", "/admin/analytics/product-performance")


FLOWS: dict[str, Callable[[Session], None]] = {
    "shopper": shopper,
    "buyer": buyer,
    "farmer": farmer,
    "driver": driver,
    "admin": admin,
}
ROLE_OF: dict[str, str] = {
    "shopper": "consumer",
    "buyer": "consumer",
    "farmer": "farmer",
    "driver": "driver",
    "admin": "admin",
}
