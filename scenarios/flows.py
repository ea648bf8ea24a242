"""What each persona does, as plain functions over a :class:`Session`.

Flows are written once and used two ways: by the Locust persona users of
the closed model (with think time between steps) and by the open model's
arrival driver (one flow per arrival, no think time). Requests are named by
route template (``/products/[id]``) so statistics group by endpoint, not
by id.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fixtures.catalogue import DEFAULT_CATEGORIES, DEFAULT_TERMS, Catalogue, Popularity
from runconfig.traffic import Traffic


@dataclass
class Session:
    """One persona's identity and client, and how it pauses between steps."""

    client: Any
    """A Locust ``FastHttpSession`` (or anything with its ``request`` signature)."""
    persona: str
    token: str
    profile_id: int
    rng: random.Random
    traffic: Traffic
    """Popularity, browsing depth and operations cadence from the phase config."""
    think: Callable[[], None] = lambda: None
    intended_start: float | None = None
    """Open model: when this flow's arrival was scheduled (epoch seconds)."""
    known_products: list[int] = field(default_factory=list)
    catalogue: Catalogue | None = None
    popularity: Popularity | None = None

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
        context: dict[str, Any] = {"persona": self.persona, "profile_id": self.profile_id}
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


def pick_product(session: Session) -> int | None:
    """A product by popularity over the whole catalogue (ids seen on pages without one)."""
    if session.popularity is not None:
        return session.popularity.product(session.rng)
    if session.known_products:
        return session.rng.choice(session.known_products)
    return None


def _catalogue_query(session: Session) -> tuple[str, str]:
    """Where a visit starts: a name search, a category, or the whole list."""
    traffic, draw = session.traffic, session.rng.random()
    catalogue = session.catalogue
    terms = catalogue.terms if catalogue else DEFAULT_TERMS
    categories = catalogue.categories if catalogue else DEFAULT_CATEGORIES
    if draw < traffic.search_share:
        return f"/products/search?q={quote(session.rng.choice(terms))}", "/products/search"
    if draw < traffic.search_share + traffic.category_share:
        category = quote(session.rng.choice(categories))
        return f"/products/search?category={category}", "/products/search"
    return "/products?limit=50", "/products"


def shopper(session: Session) -> None:
    """Search or browse, scroll a few pages, open a few products (Zipf popularity)."""
    path, name = _catalogue_query(session)
    page = session.get_json(path, name)
    _remember_products(session, page)
    session.think()
    pages = 1
    while (
        isinstance(page, dict)
        and page.get("next_cursor")
        and pages < session.traffic.max_pages
        and session.rng.random() < session.traffic.next_page_probability
    ):
        separator = "&" if "?" in path else "?"
        page = session.get_json(f"{path}{separator}cursor={quote(page['next_cursor'])}", name)
        pages += 1
        session.think()
    for _ in range(session.rng.randint(*session.traffic.product_views)):
        product_id = pick_product(session)
        if product_id is None:
            break
        # A product that is not (or no longer) in the catalogue is an answer, not a fault.
        session.request("GET", f"/products/{product_id}", "/products/[id]", expected=(404,))
        session.think()


MIN_BASKET_EUR = 30.0
"""The highest market minimum in the fixtures: buyers fill carts up to it."""


def buyer(session: Session) -> None:
    """Fill a cart with popular products up to the market minimum, check out, see orders."""
    if session.popularity is None and not session.known_products:
        _remember_products(session, session.get_json("/products?limit=50", "/products"))
        session.think()
    cart: Any = None
    for _ in range(8):  # bounded: a few items, until the basket passes the minimum
        product_id = pick_product(session)
        if product_id is None:
            return
        session.request(  # 409: this product is not available (5 % of the fixtures)
            "POST",
            "/cart/items",
            "/cart/items",
            json={"product_id": product_id, "quantity": session.rng.randint(1, 3)},
            expected=(409,),
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
    """Review own products; restock one and nudge its price (invalidating its cache)."""
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
        session.think()
    session.get_json("/payouts", "/payouts")


def next_delivery_date(today: dt.date | None = None) -> dt.date:
    """The date checkouts deliver on by default (tomorrow), which operations batch."""
    return (today or dt.date.today()) + dt.timedelta(days=1)


ACTIVE_BATCH = ("claimed", "in_progress")


def driver(session: Session) -> None:
    """Work on the own route of the next delivery date, or claim one; deliver stops."""
    date = next_delivery_date().isoformat()
    data = session.get_json(f"/driver/batches?delivery_date={date}", "/driver/batches")
    batches = data.get("batches", []) if isinstance(data, dict) else []
    session.think()
    own = [
        b
        for b in batches
        if b.get("driver_id") == session.profile_id and b.get("status") in ACTIVE_BATCH
    ]
    if own:
        batch_id = own[0]["id"]
    else:
        pending = [b for b in batches if b.get("status") == "pending"]
        if not pending:
            return
        batch_id = session.rng.choice(pending)["id"]
        claim = session.request(  # 409: another driver was quicker
            "POST",
            f"/driver/batches/{batch_id}/claim",
            "/driver/batches/[id]/claim",
            expected=(409,),
        )
        if getattr(claim, "status_code", 0) != 200:
            return
        session.think()
    detail = session.get_json(f"/driver/batches/{batch_id}", "/driver/batches/[id]")
    stops = detail.get("stops", []) if isinstance(detail, dict) else []
    todo = [stop for stop in stops if stop.get("status") in ("pending", "arrived")]
    for stop in todo[:5]:  # a few stops per visit; the next visit continues the route
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


JOB_DONE = ("complete", "not_found")
JOB_POLLS = 5


def generate_batches(session: Session) -> None:
    """Operations: batch the next delivery date's paid orders (OSRM routes them).

    phase0/1 answer when the batches exist (the seed's blocking call); phase2+
    queue a job (202) that is polled a few times, as an operator's dashboard would.
    """
    date = next_delivery_date().isoformat()
    response = session.request(
        "POST", "/admin/batches/generate", "/admin/batches/generate", json={"delivery_date": date}
    )
    job = _json(response)
    job_id = job.get("job_id") if isinstance(job, dict) else None
    for _ in range(JOB_POLLS if job_id else 0):
        session.think()
        status = session.get_json(f"/admin/jobs/{job_id}", "/admin/jobs/[id]")
        if not isinstance(status, dict) or status.get("status") in JOB_DONE:
            break


def payout_round(payees: list[Session]) -> None:
    """Operations: pay out farmers' and drivers' earned balances (409: nothing earned)."""
    for payee in payees:
        payee.request("POST", "/payouts", "/payouts", expected=(409,))


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
    "operations": "admin",
}
