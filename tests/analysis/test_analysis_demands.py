"""Service demands and the capacity plan on synthetic runs with known per-request demands.

The synthetic writer (tests/synthetic.py) drives each resource's samples by the
utilisation law from the records' own per-second route counts, so every demand is known
exactly and the estimate must recover it.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis import demands as dm
from analysis import load_run
from analysis import plan as cp
from analysis.steps import build_steps
from runconfig.phase_config import load_phases
from tests.synthetic import SyntheticSpec, write_run

#: Known demands (rate units per request): CPU in core-seconds, calls, connection-seconds.
SERVICE_CPU = {
    "background": 0.05,
    "GET /products": 0.004,
    "GET /products/[id]": 0.002,
    "GET /search": 0.006,
    "POST /cart/items": 0.003,
    "POST /checkout": 0.012,
    "GET /orders": 0.005,
}
POSTGRES_CPU = {
    "background": 0.02,
    "GET /products": 0.003,
    "GET /products/[id]": 0.002,
    "GET /search": 0.008,
    "POST /cart/items": 0.002,
    "POST /checkout": 0.006,
    "GET /orders": 0.004,
}
STRIPE = {"POST /checkout": 2.0}
HOLD = {
    "GET /products": 0.004,
    "GET /products/[id]": 0.002,
    "GET /search": 0.009,
    "POST /cart/items": 0.006,
    "POST /checkout": 0.05,
    "GET /orders": 0.005,
}
DEMANDS = {
    "process:marketplace/cpu_percent": SERVICE_CPU,
    "process:postgres/cpu_percent": POSTGRES_CPU,
    "service/stripe_calls": STRIPE,
    "service/marketplace_db_connection_hold_seconds_sum": HOLD,
}
#: Per-second noise of 0.5 % of each resource's mean busy rate: small enough that every
#: route's demand is identifiable within 5 % from 330 steady seconds.
SPEC = SyntheticSpec(demands=DEMANDS, demand_noise=0.005, stripe_rate_limit=100.0)
KEYS = {
    "service_cpu": SERVICE_CPU,
    "postgres_cpu": POSTGRES_CPU,
    "stripe_calls": STRIPE,
    "db_hold": HOLD,
}


@pytest.fixture(scope="module")
def demand_run(tmp_path_factory):
    """The default USL-shaped staircase (10..100 users) with known demands."""
    return load_run(write_run(tmp_path_factory.mktemp("runs") / "demands", SPEC))


@pytest.fixture(scope="module")
def demands(demand_run):
    return dm.estimate([demand_run])


def test_recovers_every_known_demand_within_5_percent(demands):
    for key, truth in KEYS.items():
        fit = demands.resource(key)
        assert fit is not None, key
        for route, d in zip(fit.routes, fit.demand, strict=True):
            expected = truth.get(route, 0.0)
            if expected == 0.0:
                # a route that costs nothing: estimate near 0 (relative to the others)
                assert abs(d) < 0.05 * max(truth.values()), (key, route, d)
                continue
            assert abs(d - expected) / expected < 0.05, (key, route, d, expected)


def test_intervals_cover_the_truth(demands):
    """HAC intervals are honest: they contain the known demands about 95 % of the time."""
    misses = 0
    total = 0
    for key, truth in KEYS.items():
        fit = demands.resource(key)
        for route, ci in zip(fit.routes, fit.demand_ci, strict=True):
            if route in truth:
                total += 1
                misses += not (ci[0] <= truth[route] <= ci[1])
    assert total == 19 and misses <= 4, (misses, total)  # P(>= 5 of 19 at 95 %) < 0.5 %


def test_missing_resources_are_listed_not_invented(demands):
    keys = {f.spec.key for f in demands.resources}
    assert "osrm_calls" not in keys and "redis_ops" not in keys
    text = " ".join(demands.missing)
    assert "OSRM calls: not sampled" in text and "Redis operations: not sampled" in text
    assert "network bytes per service" in text


def test_per_user_rate_from_the_records(demand_run, demands):
    """No persona mix in the config: one per-user rate, requests / user-seconds."""
    (rate,) = [p for p in demands.personas if not p.fixed]
    assert rate.persona == dm.ALL_USERS
    levels = demands.levels
    expected = sum(lv.throughput * lv.step.duration_s for lv in levels) / sum(
        lv.users * lv.step.duration_s for lv in levels
    )
    assert rate.rate == pytest.approx(expected, rel=1e-9)
    assert rate.ci[0] <= rate.rate <= rate.ci[1]
    # the USL's contention: one user's rate falls with load, and the plan must say so
    assert demands.per_user_trend is not None and demands.per_user_trend < -0.10


def test_plan_names_the_binding_resource(demand_run, demands):
    """M1's first resource to bind, from the known demands, with its user count."""
    plan = cp.plan([demand_run])
    m1, m2 = plan.milestones[:2]
    per_user = sum(lv.throughput * lv.step.duration_s for lv in demands.levels) / sum(
        lv.users * lv.step.duration_s for lv in demands.levels
    )
    # The milestone's think time (config/phases.toml, 1-5 s) is longer than the run's
    # (0.5-1.5 s): one user cycles through response time R and think time Z.
    z_run = sum(SPEC.think_time_s) / 2
    z_m1 = sum(load_phases().defaults.think_time_s) / 2
    response = 1 / per_user - z_run
    per_user *= (response + z_run) / (response + z_m1)
    share = demands.route_share
    expected = {}
    caps = {"stripe_rps": (100.0, STRIPE), "postgres_cores": (8.0, POSTGRES_CPU)}
    for key, (cap, truth) in caps.items():
        slope = per_user * sum(share[r] * d for r, d in truth.items() if r != "background")
        expected[key] = (cap * cp.PLANNING_UTILISATION - truth.get("background", 0)) / slope
    first = min(expected, key=expected.get)
    assert first == "stripe_rps"
    assert m1.binding is not None and m1.binding.resource.key == first
    assert m1.binding.binds_at == pytest.approx(expected[first], rel=0.05)
    lo, hi = m1.binding.binds_at_ci
    assert lo <= m1.binding.binds_at <= hi
    # Stripe binds at ~2,500 users: it fits M1's 1,500 and sinks M2's 15,000
    assert lo > m1.users
    stripe = next(p for p in m1.projections if p.resource.key == "stripe_rps")
    assert stripe.status == "fits"
    stripe = next(p for p in m2.projections if p.resource.key == "stripe_rps")
    assert stripe.status == "exceeds" and m2.verdict == "not ready"
    assert "Stripe requests" in m2.verdict_text


def test_every_milestone_number_is_projected_and_assumptions_say_where_they_break(demand_run):
    plan = cp.plan([demand_run])
    assert [m.milestone for m in plan.milestones] == ["M1", "M2", "M3", "M4"]
    assert [m.users for m in plan.milestones] == [1500, 15000, 75000, 150000]
    text = " ".join(plan.assumptions)
    assert "Where it breaks" in text and "1,500x" in text  # 150,000 / 100 users measured
    for m in plan.milestones:
        for p in m.projections:
            assert p.load_ci[0] <= p.load <= p.load_ci[1]
            if p.resource is not cp.EGRESS:  # bytes/s: shown, not sized
                assert p.required == pytest.approx(p.load / cp.PLANNING_UTILISATION)


def test_backtest_on_a_usl_shaped_run_is_within_10_percent(demand_run):
    bt = cp.backtest(demand_run)
    assert bt is not None and bt.target_step == "hold5" and len(bt.fit_steps) == 5
    assert {r.quantity for r in bt.rows} >= {
        "throughput",
        "service cores",
        "Postgres cores",
        "Stripe requests",
        "DB connections in use (Little's law)",
    }
    for row in bt.rows:
        assert row.error is not None and abs(row.error) < 0.10, row
    assert bt.binding_predicted == bt.binding_measured


def test_backtest_catches_a_wrong_model(tmp_path):
    """Control: when the top step costs more per request than the lower ones (a new
    contention the plan assumes away), the backtest error shows it."""
    run_dir = write_run(tmp_path / "r", SPEC)
    run = load_run(run_dir)
    top = max(build_steps(run), key=lambda s: s.users)
    s = run.samples
    m = (
        (s["source"] == "process:marketplace")
        & (s["metric"] == "cpu_percent")
        & (s["ts_us"] > top.start_us)
    )
    s.loc[m, "value"] *= 1.5
    bt = cp.backtest(run)
    row = next(r for r in bt.rows if r.quantity == "service cores")
    assert row.error < -0.2


def test_seed_formula_as_written(demand_run):
    from analysis.seed_plan import calculate_capacity

    cpu, lat, err, result = calculate_capacity(1000, 500.0, 0.0, 50.0)
    assert cpu == 1000 and lat == 4000 and err == float("inf") and result == 1000
    f = cp.seed_formula(demand_run)
    assert f.max_users == 100 and f.cpu_usage is not None
    assert f.result == min(v for v in (f.cpu_capacity, f.latency_capacity, f.error_capacity))


def test_no_steady_step_is_a_plan_error(demand_run, monkeypatch):
    monkeypatch.setattr(dm, "build_steps", lambda run: [])
    with pytest.raises(cp.PlanError, match="steady-state"):
        cp.plan([demand_run])


def test_predict_throughput_is_exact_on_the_usl():
    from tests.synthetic import usl_throughput

    spec = SyntheticSpec()
    n = np.array([10.0, 20, 40, 60, 80])
    x = np.array([usl_throughput(spec, v) for v in n])
    assert cp.predict_throughput(n, x, 100.0) == pytest.approx(usl_throughput(spec, 100), rel=1e-6)
