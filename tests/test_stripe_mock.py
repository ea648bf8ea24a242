"""The Stripe mock as a real process, driven by the official Stripe SDK.

The mock is run from a copy of its file in a temporary directory, the way a
container runs ``/opt/loadgate/stripe_mock.py``: that proves it needs nothing
from ``stack.*``. One process serves the module; each test sets the realism
knobs it needs through ``POST /_loadgate/config`` first.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import stripe

pytestmark = pytest.mark.services  # one real mock process serves the module

MOCK_FILE = Path(__file__).resolve().parents[1] / "stack" / "stripe_mock.py"

API_KEY = "sk_test_loadgate"
PICKLE = Path("/tmp/localstripe.pickle")
NO_REALISM = {
    "latency_min_ms": 0,
    "latency_max_ms": 0,
    "rate_limit_per_s": 0,
    "error_rate": 0,
    "error_status": 500,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stripe mock exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/_loadgate/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("stripe mock did not become healthy in time")


def _pickle_stamp() -> int | None:
    return PICKLE.stat().st_mtime_ns if PICKLE.exists() else None


@pytest.fixture(scope="module")
def pickle_before() -> int | None:
    """State of localstripe's pickle before the mock ever ran."""
    return _pickle_stamp()


@pytest.fixture(scope="module")
def mock_url(tmp_path_factory: pytest.TempPathFactory, pickle_before: int | None) -> Iterator[str]:
    """A mock started from a standalone copy of its file, stopped with SIGTERM."""
    workdir = tmp_path_factory.mktemp("stripe_mock")
    script = workdir / "stripe_mock.py"
    shutil.copy(MOCK_FILE, script)
    port = _free_port()
    log = (workdir / "mock.log").open("wb")
    cmd = [sys.executable, str(script), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--latency-ms", "200", "500", "--rate-limit", "0", "--seed", "7"]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            assert proc.wait(timeout=10) == 0, "mock did not exit cleanly on SIGTERM"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
            log.close()
    text = (workdir / "mock.log").read_text()
    assert "latency_ms=[200, 500]" in text and "rate_limit_per_s=0" in text


def _configure(url: str, **settings: float) -> dict:
    response = httpx.post(f"{url}/_loadgate/config", json={**NO_REALISM, **settings})
    response.raise_for_status()
    return response.json()


def _client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": url}, max_network_retries=0)


def test_customer_and_payment_intent_with_latency(mock_url: str) -> None:
    _configure(mock_url, latency_min_ms=200, latency_max_ms=500)
    client = _client(mock_url)
    customer = client.v1.customers.create(params={"email": "ada@example.com"})
    assert customer.id.startswith("cus_")

    started = time.perf_counter()
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2599,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert intent.status == "succeeded"
    assert 200 <= elapsed_ms < 500 + 250, elapsed_ms


async def _burst(url: str, n: int) -> list[httpx.Response]:
    auth = httpx.BasicAuth(API_KEY, "")
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, auth=auth, limits=limits, timeout=10) as http:
        calls = [http.post("/v1/customers", data={"email": f"u{i}@example.com"}) for i in range(n)]
        return await asyncio.gather(*calls)


def test_burst_above_rate_limit_gets_stripe_429s(mock_url: str) -> None:
    _configure(mock_url, rate_limit_per_s=20)
    before = httpx.get(f"{mock_url}/_loadgate/config").json()
    responses = asyncio.run(_burst(mock_url, 60))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) >= 15, statuses
    limited = [r for r in responses if r.status_code == 429]
    assert len(limited) >= 20, statuses
    assert set(statuses) <= {200, 429}
    error = limited[0].json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit"

    after = httpx.get(f"{mock_url}/_loadgate/config").json()
    assert after["rate_limited"] - before["rate_limited"] == len(limited)
    assert after["requests_seen"] - before["requests_seen"] == 60


def test_sdk_raises_rate_limit_error(mock_url: str) -> None:
    _configure(mock_url, rate_limit_per_s=1)
    client = _client(mock_url)
    with pytest.raises(stripe.RateLimitError):
        for _ in range(5):  # bucket holds one token: the second call is refused
            client.v1.customers.list()


def test_runtime_config_change(mock_url: str) -> None:
    config = _configure(mock_url, latency_min_ms=300, latency_max_ms=300)
    assert config["latency_min_ms"] == 300 and config["latency_max_ms"] == 300
    client = _client(mock_url)
    started = time.perf_counter()
    client.v1.customers.list()
    assert time.perf_counter() - started >= 0.3

    _configure(mock_url)
    started = time.perf_counter()
    client.v1.customers.list()
    assert time.perf_counter() - started < 0.2


@pytest.mark.parametrize(
    "body",
    [{"bogus": 1}, {"error_rate": 2}, {"latency_min_ms": "fast"}, {"error_status": 200}],
)
def test_bad_config_is_rejected_and_changes_nothing(mock_url: str, body: dict) -> None:
    before = _configure(mock_url)
    response = httpx.post(f"{mock_url}/_loadgate/config", json=body)
    assert response.status_code == 400
    after = httpx.get(f"{mock_url}/_loadgate/config").json()
    assert {k: after[k] for k in NO_REALISM} == {k: before[k] for k in NO_REALISM}


def test_error_injection(mock_url: str) -> None:
    _configure(mock_url, error_rate=1)
    client = _client(mock_url)
    with pytest.raises(stripe.APIError) as raised:
        client.v1.customers.create(params={"email": "x@example.com"})
    assert raised.value.http_status == 500

    _configure(mock_url, error_rate=1, error_status=503)
    response = httpx.get(f"{mock_url}/v1/customers", auth=(API_KEY, ""))
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "api_error"
    # Control endpoints are never faulted.
    assert httpx.get(f"{mock_url}/_loadgate/health").status_code == 200


def test_control_endpoints_need_no_auth_and_unknown_ones_404(mock_url: str) -> None:
    _configure(mock_url, latency_min_ms=1000, latency_max_ms=1000, rate_limit_per_s=1)
    started = time.perf_counter()
    for _ in range(5):
        assert httpx.get(f"{mock_url}/_loadgate/health").json() == {"status": "ok"}
    assert time.perf_counter() - started < 1.0
    assert httpx.get(f"{mock_url}/_loadgate/nope").status_code == 404
    _configure(mock_url)
    assert httpx.get(f"{mock_url}/v1/customers").status_code == 401  # the API still needs a key


def test_no_pickle_written(mock_url: str, pickle_before: int | None) -> None:
    _configure(mock_url)
    client = _client(mock_url)
    for i in range(3):
        client.v1.customers.create(params={"email": f"p{i}@example.com"})
    assert _pickle_stamp() == pickle_before


def test_lists_page_through_every_object_of_their_type_once(mock_url: str) -> None:
    """The mock's type index (``index_store_by_type``) answers lists as localstripe's
    whole-store scan did: every object of the listed type, once, in creation order, and
    a charge's refunds (read on every export of its PaymentIntent) are its own."""
    _configure(mock_url)
    client = _client(mock_url)
    created = [
        client.v1.payment_intents.create(
            params={"amount": 100 + i, "currency": "eur", "payment_method": "pm_card_visa",
                    "confirm": True, "metadata": {"order_id": str(i)}}
        ).id
        for i in range(23)
    ]  # fmt: skip

    def charge_of(intent_id: str) -> str:
        latest = client.v1.payment_intents.retrieve(intent_id).latest_charge
        return latest if isinstance(latest, str) else latest.id  # localstripe expands it

    refund = client.v1.refunds.create(params={"charge": charge_of(created[5]), "amount": 40})

    listed: list[str] = []
    params: dict = {"limit": 10}
    while True:
        page = client.v1.payment_intents.list(params=params)
        listed += [pi.id for pi in page.data]
        if not page.has_more:
            break
        params["starting_after"] = page.data[-1].id
    assert len(listed) == len(set(listed))  # each once
    assert [pi for pi in listed if pi in set(created)] == created  # all, in creation order
    assert not any(pi.startswith(("ch_", "cus_", "re_")) for pi in listed)  # only its type

    charge = client.v1.charges.retrieve(charge_of(created[5]))
    assert charge.amount_refunded == 40
    assert [r.id for r in client.v1.refunds.list(params={"charge": charge.id}).data] == [refund.id]
    assert client.v1.charges.retrieve(charge_of(created[6])).amount_refunded == 0
