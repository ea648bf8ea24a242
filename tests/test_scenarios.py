"""The traffic's own logic, with a fake HTTP client that answers like the service.

What is checked here is what the scenarios decide, not how the service
answers: which products a seed chooses (Zipf over the whole catalogue), that
two open-model drivers with the same seed offer the same arrivals and send
the same first 100 requests, that the phase config carries the traffic
numbers, and what the operator's jobs and the drivers ask for. The real-run
counterpart is ``tests/test_traffic_run.py``.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from fixtures.catalogue import Catalogue, Popularity
from runconfig.phase_config import DEFAULT_CONFIG, ConfigError, load_phases, resolve
from runconfig.traffic import Traffic
from scenarios.arrivals import Arrivals
from scenarios.context import TrafficContext
from scenarios.credentials import CredentialPool
from scenarios.flows import (
    FLOWS,
    Session,
    driver,
    generate_batches,
    next_delivery_date,
    payout_round,
    shopper,
)
from scenarios.plan import LoadPlan

CATALOGUE = 500


class FakeResponse:
    def __init__(self, status: int, body: Any) -> None:
        self.status_code, self.body, self.marked = status, body, None

    def json(self) -> Any:
        return self.body

    def success(self) -> None:
        self.marked = "success"

    def failure(self, _why: str) -> None:
        self.marked = "failure"

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *_: Any) -> None:
        return None


class FakeClient:
    """Answers each route as the service would, and records every request sent."""

    def __init__(self, job: bool = False, own_batch: bool = False) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.bodies: list[Any] = []
        self.job, self.own_batch = job, own_batch

    def request(self, method: str, path: str, **kwargs: Any) -> FakeResponse:
        persona = kwargs.get("context", {}).get("persona", "")
        self.sent.append((persona, method, path))
        self.bodies.append(kwargs.get("json"))
        return FakeResponse(*self._answer(method, path))

    def _answer(self, method: str, path: str) -> tuple[int, Any]:
        url = urlparse(path)
        query = parse_qs(url.query)
        route = url.path
        if route in ("/products", "/products/search"):
            page = 1 + int(query.get("cursor", ["0"])[0].lstrip("c") or 0)
            ids = list(range(50 * (page - 1) + 1, 50 * page + 1))
            more = page < 4
            return 200, {"products": [{"id": i} for i in ids], "next_cursor": f"c{page}" * more}
        if route.startswith("/products/"):
            return 200, {"id": int(route.rsplit("/", 1)[1])}
        if route == "/cart":
            return 200, {"subtotal": 40.0, "items": []}
        if route == "/checkout":
            return 201, {"order_id": 7}
        if route == "/admin/batches/generate":
            return (202, {"job_id": "j1"}) if self.job else (200, {"batches": 2})
        if route.startswith("/admin/jobs/"):
            return 200, {"status": "complete"}
        if route == "/payouts" and method == "POST":
            return 409, {"error": "nothing_to_pay"}
        if route == "/driver/batches":
            mine = {"id": 5, "status": "in_progress", "driver_id": 3}
            free = {"id": 9, "status": "pending", "driver_id": None}
            return 200, {"batches": [mine, free] if self.own_batch else [free]}
        if route.startswith("/driver/batches/") and route.endswith("/claim"):
            return 200, {"id": 9, "status": "claimed"}
        if route.startswith("/driver/batches/") and method == "GET":
            stops = [
                {"id": 100 + i, "status": "delivered" if i < 2 else "pending"} for i in range(8)
            ]
            return 200, {"stops": stops}
        if route == "/farmer/products":
            return 200, {"products": [{"id": 3, "stock_quantity": 10, "price": "2.50"}]}
        return 200, {}


def _pool() -> CredentialPool:
    rows = [
        {"role": role, "token": f"{role}-{i}", "profile_id": str(i)}
        for role in ("consumer", "farmer", "driver", "admin")
        for i in range(1, 21)
    ]
    return CredentialPool(rows)


def _context(seed: int, traffic: Traffic | None = None) -> TrafficContext:
    traffic = traffic or load_phases().defaults.traffic
    catalogue = Catalogue.of_fixtures(CATALOGUE)
    return TrafficContext(traffic, catalogue, Popularity(CATALOGUE, traffic.zipf_exponent, seed))


def _session(client: FakeClient, persona: str, seed: int = 1, profile_id: int = 3) -> Session:
    context = _context(seed)
    return Session(
        client=client,
        persona=persona,
        token="t",
        profile_id=profile_id,
        rng=random.Random(seed),
        traffic=context.traffic,
        catalogue=context.catalogue,
        popularity=context.popularity,
    )


def _plan() -> LoadPlan:
    phase = resolve(load_phases(), 2, users=100, duration_s=60, model="open", rate=20)
    return LoadPlan.from_dict(phase.model_dump())


def _first_requests(seed: int, count: int = 100) -> tuple[list[float], list[tuple]]:
    arrivals = Arrivals(_plan(), seed, 0, 1, _pool(), _context(seed))
    offsets = arrivals.offsets()
    client = FakeClient()
    times = []
    while len(client.sent) < count:
        times.append(next(offsets))
        session = arrivals.session(client)
        FLOWS[session.persona](session)
    return times, client.sent[:count]


# --- popularity -------------------------------------------------------------------------


def test_popularity_is_skewed_over_the_whole_catalogue() -> None:
    popularity = Popularity(CATALOGUE, 1.0, seed=42)
    rng = random.Random(0)
    views = Counter(popularity.product(rng) for _ in range(20_000))
    top_tenth = sum(n for _, n in views.most_common(CATALOGUE // 10))
    assert top_tenth > 0.5 * 20_000  # skewed: the top 10 % draw most views ...
    assert len(views) > 0.9 * CATALOGUE  # ... yet the long tail is read too
    assert set(views) <= set(range(1, CATALOGUE + 1))
    assert popularity.share_of_top(0.1) == pytest.approx(top_tenth / 20_000, abs=0.02)


def test_the_seed_decides_which_products_are_popular() -> None:
    a, b, c = (Popularity(CATALOGUE, 1.0, seed) for seed in (7, 7, 8))
    assert list(a.ids[:20]) == list(b.ids[:20])
    assert list(a.ids[:20]) != list(c.ids[:20])


def test_shoppers_read_deep_pages_filters_and_a_fifth_of_the_catalogue() -> None:
    client = FakeClient()
    for seed in range(300):
        shopper(_session(client, "shopper", seed=seed))
    paths = [path for _, _, path in client.sent]
    details = {p for p in paths if p.startswith("/products/") and "search" not in p}
    assert len(details) >= CATALOGUE / 5
    assert any("cursor=" in p for p in paths)  # deeper pages
    assert any("category=" in p for p in paths) and any("q=" in p for p in paths)
    assert any(p.startswith("/products?") for p in paths)


# --- reproducibility of the open model ----------------------------------------------------


def test_same_seed_offers_the_same_arrivals_and_the_same_first_100_requests() -> None:
    times_a, first_a = _first_requests(seed=11)
    times_b, first_b = _first_requests(seed=11)
    assert times_a == times_b
    assert first_a == first_b
    assert len({persona for persona, _, _ in first_a}) >= 2
    assert any(path.startswith("/products/") for _, _, path in first_a)


def test_another_seed_makes_other_choices() -> None:
    times_a, first_a = _first_requests(seed=11)
    times_b, first_b = _first_requests(seed=12)
    assert times_a[:10] != times_b[:10]
    assert first_a != first_b


def test_a_dropped_arrival_does_not_shift_the_next_arrivals_choices() -> None:
    plan, pool = _plan(), _pool()
    kept = Arrivals(plan, 5, 0, 1, pool, _context(5))
    dropping = Arrivals(plan, 5, 0, 1, _pool(), _context(5))
    kept.session(FakeClient())
    dropping.skip()
    a, b = kept.session(FakeClient()), dropping.session(FakeClient())
    assert a.persona == b.persona and a.rng.random() == b.rng.random()


# --- the phase config carries the traffic ----------------------------------------------


def test_phase_config_traffic_reaches_the_plan() -> None:
    phase = resolve(load_phases(), 1)
    plan = LoadPlan.from_dict(phase.model_dump())
    assert plan.traffic == phase.traffic
    assert plan.traffic.payouts_per_round == 10  # seed §4.3: payouts in batches of 10
    assert 0 < plan.traffic.search_share + plan.traffic.category_share <= 1


def test_bad_traffic_config_is_refused_with_its_key(tmp_path: Path) -> None:
    text = DEFAULT_CONFIG.read_text().replace("search_share = 0.3", "search_share = 0.9")
    bad = tmp_path / "phases.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match="defaults.traffic"):
        load_phases(bad)


# --- the plugin hands the config to the personas (no import loop: tests/test_layers.py) -

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

PERSONA_WIRING = """
import json, sys
from types import SimpleNamespace
from scenarios.personas import PERSONA_USERS, PersonaUser
own = [n for n, c in PERSONA_USERS.items() if "weight" in c.__dict__]
own += ["think_time_s"] if "think_time_s" in PersonaUser.__dict__ else []
from scenarios.plugin import apply_plan
apply_plan(SimpleNamespace(parsed_options=SimpleNamespace(loadgate_plan=sys.argv[1]), runner=None))
weights = {name: cls.weight for name, cls in PERSONA_USERS.items()}
print(json.dumps({"own": own, "weights": weights, "think": PersonaUser.think_time_s}))
"""


def _persona_wiring(plan: str) -> dict:
    """Import the personas, then the plugin, in a fresh process (Locust patches gevent)."""
    out = subprocess.run(
        [sys.executable, "-c", PERSONA_WIRING, plan],
        capture_output=True,
        text=True,
        cwd=SCENARIOS.parent,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _shares(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {name: round(weight / total, 6) for name, weight in weights.items() if weight}


def test_personas_take_mix_and_think_time_from_the_plan(tmp_path: Path) -> None:
    overrides = "persona_mix = { buyer = 3, admin = 1 }\nthink_time_s = [0.5, 0.7]"
    text = DEFAULT_CONFIG.read_text().replace("[phases.1]\n", f"[phases.1]\n{overrides}\n", 1)
    config = tmp_path / "phases.toml"
    config.write_text(text)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(resolve(load_phases(config), 1).model_dump()))
    wired = _persona_wiring(str(plan))
    assert wired["own"] == []  # no mix or think time of their own in scenarios/personas.py
    assert _shares(wired["weights"]) == {"buyer": 0.75, "admin": 0.25}
    assert wired["think"] == [0.5, 0.7]


def test_without_a_plan_personas_follow_the_config_defaults() -> None:
    """A plain ``locust -f locustfile.py`` gets the mix and think times of phases.toml."""
    defaults = load_phases().defaults
    wired = _persona_wiring("")
    assert _shares(wired["weights"]) == _shares(defaults.persona_mix)
    assert tuple(wired["think"]) == defaults.think_time_s


# --- operations and drivers -------------------------------------------------------------


def test_batch_generation_targets_the_next_delivery_date_and_polls_a_queued_job() -> None:
    client = FakeClient(job=True)
    generate_batches(_session(client, "operations"))
    assert client.sent[0][1:] == ("POST", "/admin/batches/generate")
    assert client.sent[1][2] == "/admin/jobs/j1"
    blocking = FakeClient(job=False)
    generate_batches(_session(blocking, "operations"))
    assert len(blocking.sent) == 1  # phase0/1: the answer is the result, nothing to poll
    assert client.bodies[0] == {"delivery_date": next_delivery_date().isoformat()}


def test_a_payout_round_asks_for_every_payee_and_accepts_nothing_to_pay() -> None:
    client = FakeClient()
    payees = [_session(client, "operations", profile_id=i) for i in range(10)]
    payout_round(payees)
    assert [s[1:] for s in client.sent] == [("POST", "/payouts")] * 10


def test_a_driver_continues_their_own_route_before_claiming_another() -> None:
    client = FakeClient(own_batch=True)
    driver(_session(client, "driver", profile_id=3))
    paths = [p for _, _, p in client.sent]
    assert paths[0] == f"/driver/batches?delivery_date={next_delivery_date().isoformat()}"
    assert not any(p.endswith("/claim") for p in paths)
    assert "/driver/batches/5" in paths
    updates = [p for _, m, p in client.sent if m == "PATCH"]
    assert updates and all(p.startswith("/driver/batches/5/stops/") for p in updates)
    assert "/driver/batches/5/stops/100" not in updates  # delivered stops are not redone


def test_a_driver_without_a_route_claims_a_pending_batch() -> None:
    client = FakeClient(own_batch=False)
    driver(_session(client, "driver", profile_id=3))
    methods = [(m, p) for _, m, p in client.sent]
    assert ("POST", "/driver/batches/9/claim") in methods
    assert ("GET", "/driver/batches/9") in methods
