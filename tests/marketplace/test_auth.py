"""Auth and input like a real service (issue 10, item 7).

- A token is only as good as the account behind it: unknown users get 401, and the
  role is the database's, not the token's -- at no extra DB round trip per request
  once a worker knows the user (checked on the service's own counters).
- No public default secret: every stack start generates one, hands it to the
  service and to the credentials writer (through the state file for a detached
  stack); the service refuses to start without one.
- Control characters in query strings and dates outside a sane window are 422s;
  ``%`` and ``_`` in a search match themselves.
- A 500 leaves the keep-alive connection open for the client's next request.

Integration tests run the real service on the real stack (tests/marketplace/conftest.py);
the cache of :mod:`marketplace.identities` is also tested alone, with a fake clock.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from marketplace.auth import (
    MIN_SECRET_BYTES,
    AuthError,
    SecretError,
    generate_secret,
    issue_token,
    issue_tokens,
    require_secret,
    verify_token,
)
from marketplace.identities import Identities
from marketplace.validation import escape_like
from tests.cli_helpers import run_cli
from tests.marketplace.conftest import (
    REPO,
    SECRET,
    Service,
    World,
    metric_value,
    start_service,
    token,
)

TODAY = dt.datetime.now(dt.UTC).date()


# --- the secret -------------------------------------------------------------------------


def test_there_is_no_default_secret() -> None:
    import marketplace.auth as auth

    assert not hasattr(auth, "DEFAULT_SECRET") and not hasattr(auth, "default_secret")
    for weak in ("", None, "loadgate-dev-secret"):
        with pytest.raises(SecretError):
            issue_token(1, "admin", weak)  # type: ignore[arg-type]
    signed = issue_token(1, "admin", generate_secret())
    with pytest.raises(AuthError, match="no signing secret"):
        verify_token(signed, "")


def test_batch_tokens_are_what_pyjwt_signs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixtures' fast signer makes PyJWT's exact bytes, and PyJWT verifies them."""
    import marketplace.auth as auth

    monkeypatch.setattr(auth.time, "time", lambda: 1_700_000_000.4)
    secret = generate_secret()
    subjects = [(1, "consumer"), (2**40, "farmer"), (7, "driver"), (9, "admin")]
    tokens = issue_tokens(subjects, secret, ttl_s=3600)
    for (profile_id, role), signed in zip(subjects, tokens, strict=True):
        claims = {"sub": str(profile_id), "role": role, "iat": 1_700_000_000, "exp": 1_700_003_600}
        assert signed == jwt.encode(claims, secret, algorithm="HS256")
        assert (
            jwt.decode(signed, secret, algorithms=["HS256"], options={"verify_exp": False})
            == claims
        )
    with pytest.raises(ValueError, match="unknown role"):
        issue_tokens([(1, "consumer"), (2, "root")], secret)


def test_every_stack_config_generates_its_own_secret() -> None:
    from stack.config import StackConfig

    first, second = StackConfig(), StackConfig()
    assert first.auth_secret != second.auth_secret
    assert len(first.auth_secret.encode()) >= MIN_SECRET_BYTES
    assert require_secret(first.auth_secret) == first.auth_secret
    assert first.auth_secret not in repr(first)
    assert first == second  # the secret is not part of what makes two configs the same


def test_the_service_gets_the_stacks_secret(tmp_path: Path) -> None:
    from stack.config import StackConfig
    from stack.services import SERVICES
    from stack.spec import Address, ServiceContext

    config = StackConfig(profile="phase1")
    peers = {n: Address("127.0.0.1", 1) for n in ("postgres", "pgbouncer", "redis", "osrm")}
    ctx = ServiceContext(
        name="marketplace",
        config=config,
        ports={"main": 8000},
        peers={**peers, "stripe": Address("127.0.0.1", 2)},
        data_dir=tmp_path,
        config_dir=tmp_path,
        pg_bin=tmp_path,
        osrm_bin=tmp_path,
        osrm_data=tmp_path,
        stripe_mock="true",
    )
    assert SERVICES["marketplace"].env(ctx)["LOADGATE_AUTH_SECRET"] == config.auth_secret


@pytest.mark.services
@pytest.mark.parametrize("secret", [None, "short"])
def test_the_service_refuses_to_start_without_a_usable_secret(secret: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LOADGATE_AUTH_SECRET"}
    if secret is not None:
        env["LOADGATE_AUTH_SECRET"] = secret
    result = subprocess.run(
        [sys.executable, "-m", "marketplace", "serve", "--port", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: LOADGATE_AUTH_SECRET"), lines
    assert "32 bytes" in lines[0]


@pytest.mark.services
def test_state_file_carries_the_secret_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stack.config import StackConfig
    from stack.stack import Stack
    from stack.state import read_state, stack_secret, state_path, write_state

    monkeypatch.setenv("LOADGATE_STATE_DIR", str(tmp_path))
    stack = Stack(StackConfig(provider="local", services=("redis",)))
    write_state(stack, detached=True)  # this process is the supervisor: the state is live
    assert stat.S_IMODE(state_path().stat().st_mode) == 0o600
    assert stack_secret() == stack.config.auth_secret
    state = read_state()
    assert state is not None and state["stack_id"] == stack.stack_id
    assert stack.config.auth_secret not in json.dumps(state)  # printable without leaking


@pytest.mark.services
def test_credentials_secret_is_explicit_then_env_then_the_running_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fixtures.credentials import signing_secret
    from stack.config import StackConfig
    from stack.stack import Stack
    from stack.state import write_state

    monkeypatch.setenv("LOADGATE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("LOADGATE_AUTH_SECRET", raising=False)
    with pytest.raises(SecretError, match="stack up --detach"):
        signing_secret()
    stack = Stack(StackConfig(provider="local", services=("redis",)))
    write_state(stack, detached=True)
    assert signing_secret() == stack.config.auth_secret
    mine = generate_secret()
    monkeypatch.setenv("LOADGATE_AUTH_SECRET", mine)
    assert signing_secret() == mine
    explicit = generate_secret()
    assert signing_secret(explicit) == explicit
    with pytest.raises(SecretError):
        signing_secret("too-short")


def test_fixtures_load_without_a_secret_says_where_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from loadgate.fixtures_cli import app

    monkeypatch.setenv("LOADGATE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("LOADGATE_AUTH_SECRET", raising=False)
    urls = ["--database-url", "postgresql://u:p@127.0.0.1:1/db", "--osrm-url", "http://x"]
    result = CliRunner().invoke(app, ["load", "--size", "tiny", *urls])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "error: no signing secret" in text and "LOADGATE_AUTH_SECRET" in text


# --- the identity cache alone (its own logic, fake DB and clock) ------------------------


class FakeConn:
    def __init__(self, db: FakeDb, where: str) -> None:
        self.db, self.where = db, where

    async def __aenter__(self) -> FakeConn:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self, sql: str, params: tuple[int]) -> FakeConn:
        assert sql == "SELECT role FROM profiles WHERE id = %s"
        self.db.queries.append((self.where, params[0]))
        await asyncio.sleep(0.01)  # a real round trip yields to other requests
        self._row = self.db.rows[self.where].get(params[0])
        return self

    async def fetchone(self) -> dict[str, str] | None:
        return None if self._row is None else {"role": self._row}


class FakeDb:
    """Two tables: what the replica sees and what the primary sees."""

    def __init__(self, replica: bool = False) -> None:
        self.rows: dict[str, dict[int, str]] = {"read": {}, "primary": {}}
        self.replica = object() if replica else None
        self.queries: list[tuple[str, int]] = []

    async def read(self, profile_id: int | None = None) -> FakeConn:
        return FakeConn(self, "read" if self.replica else "primary")

    def write(self) -> FakeConn:
        return FakeConn(self, "primary")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_identity_cache_answers_from_memory_within_its_ttl() -> None:
    db, clock = FakeDb(), Clock()
    db.rows["primary"][7] = "consumer"
    ids = Identities(db, known_ttl_s=60, unknown_ttl_s=5, clock=clock)

    async def scenario() -> None:
        assert [await ids.role_of(7) for _ in range(50)] == ["consumer"] * 50
        assert len(db.queries) == 1
        db.rows["primary"][7] = "admin"  # promoted: seen once the entry expires
        clock.now += 59
        assert await ids.role_of(7) == "consumer"
        clock.now += 2
        assert await ids.role_of(7) == "admin"
        assert len(db.queries) == 2
        del db.rows["primary"][7]  # deleted: refused after the next expiry
        clock.now += 61
        assert await ids.role_of(7) is None
        assert await ids.role_of(7) is None
        assert len(db.queries) == 3
        db.rows["primary"][7] = "farmer"  # unknown ids are remembered briefly only
        clock.now += 6
        assert await ids.role_of(7) == "farmer"

    asyncio.run(scenario())


def test_identity_cache_shares_one_lookup_between_concurrent_requests() -> None:
    db = FakeDb()
    db.rows["primary"][3] = "driver"
    ids = Identities(db)

    async def scenario() -> list[str | None]:
        return list(await asyncio.gather(*(ids.role_of(3) for _ in range(20))))

    assert asyncio.run(scenario()) == ["driver"] * 20
    assert db.queries == [("primary", 3)]


def test_identity_missing_on_the_replica_is_asked_of_the_primary() -> None:
    db = FakeDb(replica=True)
    db.rows["primary"][5] = "consumer"  # created moments ago: the replica lags
    db.rows["read"][6] = "farmer"
    ids = Identities(db)
    assert asyncio.run(ids.role_of(5)) == "consumer"
    assert asyncio.run(ids.role_of(6)) == "farmer"
    assert db.queries == [("read", 5), ("primary", 5), ("read", 6)]


def test_identity_cache_is_bounded() -> None:
    db = FakeDb()
    db.rows["primary"].update({i: "consumer" for i in range(10)})
    ids = Identities(db, max_entries=4)

    async def scenario() -> None:
        for i in range(10):
            await ids.role_of(i)
        await ids.role_of(9)
        await ids.role_of(0)

    asyncio.run(scenario())
    assert len(ids._entries) == 4
    assert db.queries.count(("primary", 9)) == 1  # recent: still cached
    assert db.queries.count(("primary", 0)) == 2  # oldest: evicted, asked again


def test_like_patterns_are_escaped() -> None:
    assert escape_like("50%") == "50\\%"
    assert escape_like("snake_case") == "snake\\_case"
    assert escape_like("a\\b") == "a\\\\b"


# --- the real service: who may call -----------------------------------------------------


def _unknown_id(world: World, profile: str) -> int:
    with world.connect(profile) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) + 1000000 AS n FROM profiles").fetchone()[
            "n"
        ]


@pytest.mark.services
def test_a_token_for_a_user_that_does_not_exist_is_refused(phase1: Service) -> None:
    ghost = token(_unknown_id(phase1.world, "phase1"), "consumer")
    product = phase1.world.product_ids("phase1")[0]
    with phase1.client() as c:
        cart = c.post("/cart/items", json={"product_id": product, "quantity": 1}, headers=ghost)
        assert cart.status_code == 401, cart.text  # was a 500 (foreign key violation)
        assert cart.json()["error"] == {"code": "unauthorized", "message": "unknown user"}
        assert cart.headers["www-authenticate"] == "Bearer"
        for method, path in (("GET", "/cart"), ("GET", "/me"), ("POST", "/checkout")):
            assert c.request(method, path, headers=ghost).status_code == 401, path
        assert c.get("/products", headers=ghost).status_code == 401  # optional, but checked
        assert c.get("/products").status_code == 200


@pytest.mark.services
def test_the_role_comes_from_the_database(phase1: Service) -> None:
    pid, auth = phase1.consumer()
    farmer_id, _ = phase1.user("farmer")
    with phase1.client() as c:
        assert c.get("/cart", headers=auth).status_code == 200
        # Signed with the real secret, but claiming a role the account does not have.
        as_admin = token(pid, "admin")
        r = c.get("/admin/jobs", headers=as_admin)
        assert r.status_code == 401 and "role" in r.json()["error"]["message"], r.text
        r = c.post("/admin/batches/generate", json={"delivery_date": str(TODAY)}, headers=as_admin)
        assert r.status_code == 401
        assert c.get("/farmer/products", headers=token(farmer_id, "consumer")).status_code == 401
        assert c.get("/cart", headers=token(farmer_id, "consumer")).status_code == 401
        # Edited payload, old signature: refused before the database is asked.
        header, _, signature = auth["Authorization"].removeprefix("Bearer ").split(".")
        payload = jwt.utils.base64url_encode(
            json.dumps({"sub": str(pid), "role": "admin", "exp": 2**33}).encode()
        ).decode()
        edited = {"Authorization": f"Bearer {header}.{payload}.{signature}"}
        assert c.get("/admin/jobs", headers=edited).status_code == 401


@pytest.mark.services
def test_a_known_user_costs_no_database_lookup_per_request(phase1: Service) -> None:
    """The worker's cache answers: at most one lookup per worker for 40 requests."""
    _, auth = phase1.consumer()
    before = phase1.metrics()
    with phase1.client() as c:
        codes = [c.get("/cart", headers=auth).status_code for _ in range(40)]
    after = phase1.metrics()
    assert codes == [200] * 40

    def delta(source: str) -> float:
        name = "marketplace_auth_lookups_total"
        return metric_value(after, name, source=source) - metric_value(before, name, source=source)

    assert 1 <= delta("database") <= 2  # 2 worker processes, each asks once
    assert delta("cache") >= 38


# --- the real service: input ------------------------------------------------------------


@pytest.mark.services
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/products/search", {"q": "carrot\x00"}),
        ("/products/search", {"q": "\x1b[31m"}),
        ("/products/search", {"category": "dairy\x7f"}),
        ("/products", {"cursor": "\x00"}),
        ("/products/search", {"q\x00": "x"}),
    ],
)
def test_control_characters_in_query_strings_are_422(
    phase1: Service, path: str, params: dict[str, str]
) -> None:
    with phase1.client() as c:
        r = c.get(path, params=params)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert "control characters" in error["details"][0]["msg"]
    assert error["details"][0]["loc"][0] == "query"


@pytest.mark.services
def test_authenticated_routes_refuse_control_characters_too(phase1: Service) -> None:
    _, driver = phase1.user("driver")
    with phase1.client() as c:
        r = c.get("/driver/batches", params={"delivery_date": "2026-01-01\x00"}, headers=driver)
    assert r.status_code == 422 and "control characters" in r.text


@pytest.fixture
def odd_products(phase1: Service) -> Iterator[list[str]]:
    """Two products whose names hold LIKE's wildcards, removed afterwards (other tests
    count the catalogue)."""
    names = ["Carrots 50% off", "snake_case beans"]
    with phase1.world.connect("phase1") as conn:
        farm = conn.execute("SELECT min(id) AS id FROM farm_profiles").fetchone()["id"]
        ids = [
            conn.execute(
                "INSERT INTO products (farm_profile_id, name, category, price, stock_quantity)"
                " VALUES (%s, %s, 'vegetables', 1, 10) RETURNING id",
                (farm, name),
            ).fetchone()["id"]
            for name in names
        ]
    try:
        yield names
    finally:
        with phase1.world.connect("phase1") as conn:
            conn.execute("DELETE FROM products WHERE id = ANY(%s)", (ids,))


@pytest.mark.services
def test_percent_and_underscore_in_search_match_literally(
    phase1: Service, odd_products: list[str]
) -> None:
    def names(q: str) -> set[str]:
        with phase1.client() as c:
            r = c.get("/products/search", params={"q": q, "limit": 100})
        assert r.status_code == 200, r.text
        return {p["name"] for p in r.json()["products"]}

    assert names("%") == {"Carrots 50% off"}  # not every product
    assert names("50%") == {"Carrots 50% off"}
    assert names("_") == {"snake_case beans"}
    assert names("e_c") == {"snake_case beans"}
    assert names("s_ake") == set()  # '_' is not "any character"
    assert names("\\") == set()


@pytest.mark.services
def test_delivery_dates_outside_the_window_are_422(phase1: Service) -> None:
    _, consumer = phase1.consumer(credits="100.00")
    _, admin = phase1.user("admin")
    _, driver = phase1.user("driver")
    far, past = "9999-12-31", "0001-01-01"
    with phase1.client() as c:
        for date in (far, past, str(TODAY - dt.timedelta(days=1))):
            r = c.post("/checkout", json={"delivery_date": date}, headers=consumer)
            assert r.status_code == 422, (date, r.text)
            assert "delivery_date must be between" in r.json()["error"]["details"][0]["msg"]
        for date in (far, past, str(TODAY + dt.timedelta(days=366))):
            r = c.post("/admin/batches/generate", json={"delivery_date": date}, headers=admin)
            assert r.status_code == 422, (date, r.text)
            r = c.get("/driver/batches", params={"delivery_date": date}, headers=driver)
            assert r.status_code == 422, (date, r.text)
        for params in ({"end": "0001-01-05"}, {"start": "0001-01-01"}, {"end": far}):
            r = c.get("/admin/analytics/daily-revenue", params=params, headers=admin)
            assert r.status_code == 422, (params, r.text)  # end=0001-01-05 was a 500
        # Inside the window: accepted as before.
        ok = c.get("/driver/batches", params={"delivery_date": str(TODAY)}, headers=driver)
        assert ok.status_code == 200
        week = {"start": str(TODAY - dt.timedelta(days=7)), "end": str(TODAY)}
        assert c.get("/admin/analytics/daily-revenue", params=week, headers=admin).is_success
        empty = c.post("/checkout", json={"delivery_date": str(TODAY)}, headers=consumer)
        assert empty.status_code == 400  # past validation, on to the business rule


# --- the real service: a 500 keeps the connection ---------------------------------------


@pytest.fixture(scope="module")
def faulty(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A phase1 service with the test-only fault route on."""
    saved = os.environ.get("LOADGATE_FAULT_ROUTES")
    os.environ["LOADGATE_FAULT_ROUTES"] = "1"
    try:
        service = start_service(world, "phase1", tmp_path_factory.mktemp("faulty"))
    finally:
        if saved is None:
            del os.environ["LOADGATE_FAULT_ROUTES"]
        else:
            os.environ["LOADGATE_FAULT_ROUTES"] = saved
    try:
        yield service
    finally:
        os.killpg(service.proc.pid, 15)
        service.proc.wait(timeout=15)


def _local_address(response: httpx.Response) -> Any:
    return response.extensions["network_stream"].get_extra_info("client_addr")


@pytest.mark.services
def test_a_500_keeps_the_keep_alive_connection(faulty: Service) -> None:
    with httpx.Client(base_url=faulty.base, timeout=10) as c:
        first = c.get("/health")
        fault = c.get("/_loadgate/fault")
        assert fault.status_code == 500
        assert fault.json() == {"error": {"code": "internal_error", "message": "internal error"}}
        assert fault.headers.get("connection", "").lower() != "close"
        after = c.get("/health")
        assert after.status_code == 200
        # The same socket carried all three: the server did not close it after the 500.
        assert _local_address(first) == _local_address(fault) == _local_address(after)
    metrics = faulty.metrics()
    assert (
        metric_value(
            metrics, "marketplace_http_requests_total", route="/_loadgate/fault", status="500"
        )
        >= 1
    )
    assert "unhandled error" in faulty.log_path.read_text()


@pytest.mark.services
def test_a_500_then_another_request_on_the_same_raw_socket(faulty: Service) -> None:
    """What a load generator does: write the next request at once, on the same socket."""
    host, port = faulty.base.removeprefix("http://").split(":")
    request = "GET {} HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request.format("/_loadgate/fault").encode())
        sock.sendall(request.format("/health").encode())
        received = b""
        while received.count(b"HTTP/1.1 ") < 2 or not received.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after: {received!r}"
            received += chunk
    assert received.startswith(b"HTTP/1.1 500 ")
    assert b"HTTP/1.1 200 " in received


@pytest.mark.services
def test_the_fault_route_is_off_by_default(phase1: Service) -> None:
    with phase1.client() as c:
        assert c.get("/_loadgate/fault").status_code == 404
        assert "/_loadgate/fault" not in c.get("/openapi.json").json()["paths"]


# --- end to end: stack up, fixtures load, the tokens work (and no others) ---------------


@pytest.mark.services
@pytest.mark.timeout(400)
@pytest.mark.filterwarnings("ignore:The HMAC key is")  # the old public default is short
def test_a_detached_stack_and_its_fixtures_share_a_fresh_secret(tmp_path: Path) -> None:
    up = run_cli(
        ["stack", "up", "--provider", "local", "--profile", "phase1", "--detach"],
        tmp_path,
        timeout=300,
    )
    try:
        assert up.returncode == 0, up.stderr
        state_file = tmp_path / "stack.json"
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        secret = json.loads(state_file.read_text())["auth_secret"]
        assert len(secret.encode()) >= MIN_SECRET_BYTES
        status = run_cli(["stack", "status", "--json"], tmp_path)
        assert status.returncode == 0 and secret not in status.stdout
        env = {k: v for k, v in os.environ.items() if k != "LOADGATE_AUTH_SECRET"}
        load = subprocess.run(
            [sys.executable, "-m", "loadgate", "fixtures", "load", "--size", "tiny"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**env, "LOADGATE_STATE_DIR": str(tmp_path), "COLUMNS": "200"},
        )
        assert load.returncode == 0, load.stderr
        with (tmp_path / "credentials.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        base = next(
            s["url"] for s in json.loads(status.stdout)["services"] if s["name"] == "marketplace"
        )
        admin = next(r for r in rows if r["role"] == "admin")
        consumer = next(r for r in rows if r["role"] == "consumer")
        with httpx.Client(base_url=base, timeout=30) as c:

            def get(path: str, bearer: str) -> int:
                return c.get(path, headers={"Authorization": f"Bearer {bearer}"}).status_code

            assert get("/cart", consumer["token"]) == 200
            assert get("/admin/jobs", admin["token"]) == 200
            for key in ("loadgate-dev-secret", SECRET, generate_secret()):  # anyone else's
                claims = {"sub": admin["profile_id"], "role": "admin", "exp": 2**33}
                assert get("/admin/jobs", jwt.encode(claims, key, algorithm="HS256")) == 401
    finally:
        down = run_cli(["stack", "down"], tmp_path, timeout=120)
        assert down.returncode == 0, down.stderr
