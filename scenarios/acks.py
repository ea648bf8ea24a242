"""Acknowledged writes: what the service told a client it had stored, with its ids.

A load harness is the one tool that knows what every client was told (issue 21).
For each write the service acknowledged (a 2xx answer), the raw capture keeps the
identifiers the response returned in the event's ``ack`` column, as a small JSON
object with a ``kind``; ``loadgate verify --run`` reconciles them with the database
after the load. Every other request has ``ack`` null. The kinds and their keys are
documented in ``docs/run-directory.md``.

Only the write routes below are parsed, and only when they succeeded, so the cost
stays off the catalogue's hot path.
"""

from __future__ import annotations

import json
from typing import Any

#: (method, route template) -> kind. The templates are the flows' request names.
WRITE_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/cart/items"): "cart_add",
    ("PUT", "/cart/items/[id]"): "cart_set",
    ("DELETE", "/cart/items/[id]"): "cart_remove",
    ("POST", "/checkout"): "order",
    ("POST", "/payouts"): "payout",
    ("PATCH", "/farmer/products/[id]"): "product",
    ("POST", "/driver/batches/[id]/claim"): "claim",
    ("PATCH", "/driver/batches/[id]/stops/[id]"): "stop",
}

#: kind -> the response keys kept (renamed where the response's name is ambiguous).
_KEYS: dict[str, dict[str, str]] = {
    "cart_add": {"product_id": "product_id", "added": "quantity", "quantity": "line_quantity"},
    "cart_set": {"product_id": "product_id", "quantity": "quantity"},
    "order": {
        "order_id": "order_id",
        "total_amount": "total_amount",
        "amount_due": "amount_due",
        "status": "status",
        "payment_intent_id": "payment_intent_id",
    },
    "payout": {"id": "payout_id", "recipient_id": "recipient", "amount": "amount"},
    "product": {"id": "product_id", "stock_quantity": "stock_quantity", "price": "price"},
    "claim": {"id": "batch_id", "driver_id": "driver"},
    "stop": {"id": "stop_id", "order_id": "order_id", "status": "status"},
}


def ack_of(
    method: str, name: str, status: int, response: Any, url: str | None, profile_id: Any
) -> str | None:
    """The ``ack`` column of one request: JSON of what was acknowledged, or None."""
    kind = WRITE_ROUTES.get((method, name))
    if kind is None or not 200 <= status < 300:
        return None
    record: dict[str, Any] = {"kind": kind}
    if profile_id is not None:
        record["user"] = int(profile_id)
    if kind == "cart_remove":  # 204, no body: the product is the URL's last segment
        tail = (url or "").rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        record["product_id"] = int(tail) if tail.isdigit() else None
        return json.dumps(record, separators=(",", ":"))
    body = _json_body(response)
    if not isinstance(body, dict):
        record["unreadable"] = True  # acknowledged, but its ids are unknown
        return json.dumps(record, separators=(",", ":"))
    for key, as_key in _KEYS[kind].items():
        if key in body:
            record[as_key] = body[key]
    return json.dumps(record, separators=(",", ":"), default=str)


def _json_body(response: Any) -> Any:
    try:
        return response.json()
    except Exception:  # no body, not JSON, or not a response object at all
        return None
