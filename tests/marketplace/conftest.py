"""Real-stack fixtures for the marketplace tests.

One stack per session (Postgres + replica, PgBouncer, Redis, OSRM, Stripe mock, all
``local`` processes). phase0 gets its own database (``bh_phase0``: no scaling
indexes, direct connections); phase1-3 share ``blueharvests`` (the database PgBouncer
serves), migrated upward as later profiles are requested. Each service is a real
``python -m marketplace`` subprocess with 2 workers, started once per profile.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from marketplace.auth import issue_token
from marketplace.migrate import migrate
from marketplace.profiles import get_profile
from stack.ownership import spawn_owned

# No pytestmark here: pytest ignores it in a conftest. Each test module is marked
# `services` itself, and tests/tiers.py fails a test that starts a service unmarked.

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SECRET = "loadgate-test-secret-of-at-least-32-bytes"
# Points in central Helsinki, on the stack's OSRM map.
POINTS = [
    (24.9384, 60.1699),
    (24.9458, 60.1675),
    (24.9310, 60.1640),
    (24.9520, 60.1590),
    (24.9270, 60.1750),
    (24.9600, 60.1720),
]
ZIPS = ("00100", "00150")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@dataclass
class World:
    """URLs of the stack and helpers to make test data by SQL."""

    urls: dict[str, str]
    migrated: dict[str, int] = field(default_factory=dict)
    counter: int = 0

    def db_url(self, profile: str) -> str:
        return (
            with_db(self.urls["postgres"], "bh_phase0")
            if profile == "phase0"
            else self.urls["postgres"]
        )

    def connect(self, profile: str) -> psycopg.Connection:
        return psycopg.connect(self.db_url(profile), autocommit=True, row_factory=dict_row)

    def ensure_schema(self, profile: str) -> None:
        url = self.db_url(profile)
        level = get_profile(profile).level
        if self.migrated.get(url, -1) >= level:
            return
        fresh = url not in self.migrated
        migrate(url, get_profile(profile))
        self.migrated[url] = level
        if fresh:
            self.seed_catalogue(profile)
        if fresh and profile == "phase0":
            # Both databases charge through the one Stripe mock: keep their order ids
            # (PaymentIntent metadata) apart so verify on one never sees the other's.
            with self.connect(profile) as conn:
                conn.execute("ALTER SEQUENCE orders_id_seq RESTART WITH 100000000")

    def seed_catalogue(self, profile: str) -> None:
        """Farms with 60 products (more than one page), market configs, staff."""
        with self.connect(profile) as conn:
            for zip_code, fee in zip(ZIPS, ("4.90", "0.00"), strict=True):
                conn.execute(
                    "INSERT INTO market_configs (zip_code, delivery_fee, minimum_order)"
                    " VALUES (%s, %s, 0)",
                    (zip_code, fee),
                )
            for f in range(2):
                farmer = self.profile(profile, "farmer")
                farm = conn.execute(
                    "INSERT INTO farm_profiles (profile_id, farm_name, zip_code, lon, lat)"
                    " VALUES (%s, %s, '00100', 24.9, 60.2) RETURNING id",
                    (farmer, f"Farm {f}"),
                ).fetchone()["id"]
                for i in range(30):
                    category = ("vegetables", "fruit", "dairy")[i % 3]
                    conn.execute(
                        "INSERT INTO products (farm_profile_id, name, category, price,"
                        " stock_quantity, created_at)"
                        " VALUES (%s, %s, %s, %s, 1000, now() - make_interval(mins => %s))",
                        (farm, f"{category} item {f}-{i}", category, f"{2 + i % 7}.50", f * 30 + i),
                    )

    def profile(
        self, profile: str, role: str, credits: str | None = None, zip_code: str = "00100"
    ) -> int:
        """A new profile (consumers get an address on the map and optional credits)."""
        self.counter += 1
        lon, lat = POINTS[self.counter % len(POINTS)]
        with self.connect(profile) as conn:
            pid = conn.execute(
                "INSERT INTO profiles (role, email, full_name, address, zip_code, lon, lat)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    role,
                    f"{role}{self.counter}-{time.time_ns()}@example.test",
                    f"{role} {self.counter}",
                    f"Street {self.counter}",
                    zip_code,
                    lon,
                    lat,
                ),
            ).fetchone()["id"]
            if credits:
                conn.execute(
                    "INSERT INTO credits_ledger"
                    " (consumer_id, amount, transaction_type, balance_after)"
                    " VALUES (%s, %s, 'grant', %s)",
                    (pid, credits, credits),
                )
        return pid

    def product_ids(self, profile: str) -> list[int]:
        with self.connect(profile) as conn:
            return [r["id"] for r in conn.execute("SELECT id FROM products ORDER BY id")]


def token(pid: int, role: str, ttl_s: int = 3600) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(pid, role, SECRET, ttl_s)}"}


@dataclass
class Service:
    profile: str
    base: str
    world: World
    proc: subprocess.Popen
    log_path: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30)

    def metrics(self) -> str:
        return httpx.get(self.base + "/metrics", timeout=10).text

    def consumer(
        self, credits: str | None = None, zip_code: str = "00100"
    ) -> tuple[int, dict[str, str]]:
        pid = self.world.profile(self.profile, "consumer", credits, zip_code)
        return pid, token(pid, "consumer")

    def user(self, role: str) -> tuple[int, dict[str, str]]:
        pid = self.world.profile(self.profile, role)
        return pid, token(pid, role)

    def stripe_config(self, **changes: Any) -> None:
        httpx.post(
            self.world.urls["stripe"] + "/_loadgate/config", json=changes, timeout=5
        ).raise_for_status()


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from stack.config import StackConfig, StripeRealism
    from stack.stack import Stack

    with Stack(StackConfig(provider="local", with_replica=True, stripe=StripeRealism.off())) as s:
        urls = {
            n: s.url(n) for n in ("postgres", "pgbouncer", "replica", "redis", "osrm", "stripe")
        }
        with psycopg.connect(urls["postgres"], autocommit=True) as conn:
            conn.execute("CREATE DATABASE bh_phase0")
        yield World(urls)


_services: dict[str, Service] = {}

EXTRA_ENV = {
    "phase1": {"LOADGATE_RATE_LIMIT_PER_MIN": "100"},
    "phase2": {"LOADGATE_PAYOUT_DELAY_S": "1"},
    "phase3": {
        "LOADGATE_BREAKER_RESET_S": "3",
        "LOADGATE_ANALYTICS_REFRESH_S": "0",
        "LOADGATE_PAYOUT_DELAY_S": "1",
    },
}


def start_service(
    world: World, profile: str, tmp: Path, env_overrides: dict[str, str] | None = None
) -> Service:
    """The service in ``profile`` on the world's stack (``env_overrides``: e.g. its own Redis)."""
    world.ensure_schema(profile)
    port = free_port()
    env = {
        **os.environ,
        "LOADGATE_DATABASE_URL": world.db_url(profile),
        "LOADGATE_PGBOUNCER_URL": world.urls["pgbouncer"],
        "LOADGATE_REPLICA_URL": world.urls["replica"],
        "LOADGATE_REDIS_URL": world.urls["redis"],
        "LOADGATE_OSRM_URL": world.urls["osrm"],
        "LOADGATE_STRIPE_URL": world.urls["stripe"],
        "LOADGATE_AUTH_SECRET": SECRET,
        "LOADGATE_RATE_LIMIT_PER_MIN": "100000",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / f"prom-{profile}"),
        **EXTRA_ENV.get(profile, {}),
        **(env_overrides or {}),
    }
    log_path = tmp / f"service-{profile}-{port}.log"
    # Owned like the stack's own services: a SIGKILLed pytest takes the service (and,
    # through the service's own parent-death signal, its workers) with it.
    proc = spawn_owned(
        [PYTHON, "-m", "marketplace", "--profile", profile, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "2"],
        log_path.open("wb"),
        REPO,
        env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        raise RuntimeError(f"service not ready: {log_path.read_text()[-3000:]}")
    return Service(profile, base, world, proc, log_path)


@pytest.fixture(scope="session")
def services(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("marketplace")

    def get(profile: str) -> Service:
        if profile not in _services:
            _services[profile] = start_service(world, profile, tmp)
        return _services[profile]

    yield get
    for svc in _services.values():
        try:
            os.killpg(svc.proc.pid, signal.SIGTERM)
            svc.proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(svc.proc.pid, signal.SIGKILL)
    _services.clear()


@pytest.fixture(scope="module")
def phase0(services: Any) -> Service:
    return services("phase0")


@pytest.fixture(scope="module")
def phase1(services: Any) -> Service:
    return services("phase1")


@pytest.fixture(scope="module")
def phase2(services: Any) -> Service:
    return services("phase2")


@pytest.fixture(scope="module")
def phase3(services: Any) -> Service:
    return services("phase3")
