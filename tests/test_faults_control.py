"""The fault operations on a real stack, per provider: a service killed stops answering
and answers again on the same address once started again (the replica as a standby on
its old data), a frozen one stops answering until resumed, a killed marketplace worker
is replaced by uvicorn, and the Stripe mock's settings change and come back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from stack.config import StackConfig
from stack.control import ServiceControl
from stack.stack import Stack
from tests.support import PROVIDERS, STRIPE_UNDER_TEST, require_provider

pytestmark = pytest.mark.services


@pytest.fixture(scope="module", params=PROVIDERS)
def controlled(request: pytest.FixtureRequest) -> Iterator[tuple[Stack, ServiceControl]]:
    require_provider(request.param)
    config = StackConfig(provider=request.param, profile="phase3", stripe=STRIPE_UNDER_TEST)
    stack = Stack(config)
    control = ServiceControl(stack)
    with stack:
        yield stack, control
    control.close()


def answers(control: ServiceControl, name: str) -> bool:
    try:
        return control.answers(name)
    except Exception:  # noqa: BLE001 - any probe failure: not answering
        return False


def wait_until(check, limit_s: float = 30.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("name", ["redis", "pgbouncer", "osrm", "replica"])
def test_a_killed_service_answers_again_once_started(controlled, name):
    stack, control = controlled
    url = stack.url(name)
    assert answers(control, name)
    control.kill(name)
    assert wait_until(lambda: not answers(control, name), 10)
    control.start_again(name)
    assert stack.url(name) == url  # same address: clients reconnect, nothing re-wired
    assert wait_until(lambda: answers(control, name), 60), stack.log_tail(name)


def test_a_frozen_service_stops_answering_until_resumed(controlled):
    _, control = controlled
    control.pause("osrm")
    try:
        assert not answers(control, "osrm")  # the probe times out
    finally:
        control.resume("osrm")
    assert wait_until(lambda: answers(control, "osrm"), 10)


def test_a_killed_worker_is_replaced(controlled):
    stack, control = controlled
    before = {p.pid for p in control.workers()}
    assert len(before) == stack.config.service_workers
    detail = control.kill_worker()
    assert "uvicorn started worker" in detail, detail
    after = {p.pid for p in control.workers()}
    assert len(after) == len(before) and after != before
    assert httpx.get(stack.url("marketplace") + "/health", timeout=5).status_code == 200


def test_stripe_settings_change_and_come_back(controlled):
    stack, control = controlled
    before = control.stripe_config({"error_rate": 1.0, "error_status": 503})
    now = httpx.get(stack.url("stripe") + "/_loadgate/config", timeout=5).json()
    assert now["error_rate"] == 1.0 and now["error_status"] == 503
    control.stripe_config({k: before[k] for k in ("error_rate", "error_status")})
    now = httpx.get(stack.url("stripe") + "/_loadgate/config", timeout=5).json()
    assert now["error_rate"] == before["error_rate"] == 0.0
