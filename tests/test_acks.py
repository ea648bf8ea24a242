"""The ``ack`` column: what each acknowledged write's response said, with its ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scenarios.acks import WRITE_ROUTES, ack_of


class Response:
    def __init__(self, body: Any) -> None:
        self.body = body

    def json(self) -> Any:
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


def test_cart_add_keeps_the_units_added_and_the_user() -> None:
    raw = ack_of(
        "POST", "/cart/items", 201, Response({"product_id": 7, "quantity": 5, "added": 2}),
        "/cart/items", 42,
    )  # fmt: skip
    assert json.loads(raw) == {
        "kind": "cart_add", "user": 42, "product_id": 7, "quantity": 2, "line_quantity": 5,
    }  # fmt: skip


def test_checkout_keeps_order_id_amounts_and_status() -> None:
    body = {"order_id": 9, "total_amount": 31.9, "amount_due": 21.9, "credits_applied": 10.0,
            "status": "payment_pending", "payment_intent_id": None}  # fmt: skip
    ack = json.loads(ack_of("POST", "/checkout", 202, Response(body), "/checkout", 3))
    assert ack == {
        "kind": "order", "user": 3, "order_id": 9, "total_amount": 31.9, "amount_due": 21.9,
        "status": "payment_pending", "payment_intent_id": None,
    }  # fmt: skip


def test_cart_remove_has_no_body_and_takes_the_product_from_the_url() -> None:
    raw = ack_of("DELETE", "/cart/items/[id]", 204, Response(ValueError()), "/cart/items/55", 8)
    assert json.loads(raw) == {"kind": "cart_remove", "user": 8, "product_id": 55}


@pytest.mark.parametrize("status", [0, 400, 409, 429, 500, 502])
def test_unacknowledged_writes_have_no_ack(status: int) -> None:
    assert ack_of("POST", "/checkout", status, Response({"order_id": 1}), "/checkout", 1) is None


def test_reads_have_no_ack_and_every_write_kind_is_mapped() -> None:
    assert ack_of("GET", "/cart", 200, Response({"items": []}), "/cart", 1) is None
    assert set(WRITE_ROUTES.values()) == {
        "cart_add", "cart_set", "cart_remove", "order", "payout", "product", "claim", "stop",
    }  # fmt: skip


def test_an_unreadable_body_is_still_an_acknowledgement() -> None:
    raw = ack_of("POST", "/payouts", 201, Response(ValueError("not json")), "/payouts", 4)
    assert json.loads(raw) == {"kind": "payout", "user": 4, "unreadable": True}
