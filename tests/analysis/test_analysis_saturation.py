"""Knee detection, headroom per constraint, the leadership sentence, counters."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from analysis import analyze, load_run
from analysis.counters import counter_delta, counter_over_period, hit_rate
from analysis.crossings import BEYOND, Constraint, crossing
from analysis.gates import CriterionResult
from analysis.headroom import leadership_sentence, sanitize_criterion
from analysis.saturation import find_knee
from tests.synthetic import SyntheticSpec, usl_throughput, write_run


def _fake_step(load, p95):
    q = SimpleNamespace(ok=True, value_ms=p95)
    return SimpleNamespace(load=load, latency=SimpleNamespace(p=lambda _p, q=q: q))


def test_knee_of_a_hockey_stick():
    loads = np.arange(10, 130, 10)
    p95 = np.where(loads <= 80, 200 + loads, 280 + (loads - 80) ** 2)
    knee = find_knee([_fake_step(a, b) for a, b in zip(loads, p95, strict=True)])
    assert knee.load is not None and 70 <= knee.load <= 100


def test_knee_where_p95_departs_from_its_low_load_trend():
    """The issue's steps: P95 jumps tenfold between 750 and 1,000 users, then plateaus."""
    loads = [250, 500, 750, 1000, 1250, 1500]
    p95 = [33, 72, 337, 2618, 2353, 2637]
    knee = find_knee([_fake_step(a, b) for a, b in zip(loads, p95, strict=True)])
    assert knee.load is not None and 750 <= knee.load <= 1000, knee


def test_flat_p95_has_no_knee():
    loads = [10, 20, 40, 60, 80, 100]
    knee = find_knee(
        [_fake_step(a, b) for a, b in zip(loads, [100, 101, 99, 103, 104, 102], strict=True)]
    )
    assert knee.load is None and "2x" in knee.reason


def test_knee_needs_three_levels():
    assert find_knee([_fake_step(1, 1), _fake_step(2, 2)]).load is None


def test_crossing_measured_projected_and_not_reached():
    loads = [10, 20, 30, 40, 50, 60]
    m = crossing("cpu", "70%", loads, [10, 25, 40, 55, 72, 90], 70.0)
    assert m.basis == "measured" and 40 < m.load < 50 and m.ci == (40.0, 50.0)
    p = crossing("cpu", "70%", loads, [5, 10, 15, 20, 25, 30], 70.0)
    assert p.basis == "projected" and abs(p.load - 140) < 1 and p.ci[0] <= p.load <= p.ci[1]
    assert p.extrapolated  # 140 > 2 x 60
    flat = crossing("waits", ">=1", loads, [0, 0, 0, 0, 0, 0], 1.0)
    assert flat.basis == "not reached" and flat.load is None and flat.lower_bound == 60
    none = crossing("x", "y", loads, [None] * 6, 1.0)
    assert none.basis == "not available"


def test_headroom_on_synthetic_run(base_result):
    h = base_result.headroom
    names = {c.name for c in h.constraints}
    assert {
        "CPU service",
        "DB connections",
        "PgBouncer client waits",
        "latency SLO",
        "error budget",
        "Stripe rate limit",
    } <= names
    assert any(n.startswith("memory") for n in names)
    assert h.binding is not None and h.binding.load == min(
        c.load for c in h.constraints if c.load is not None
    )
    assert h.sentence.startswith(f"First constraint reached: {h.binding.name} at ")
    assert "SLO capacity" in h.sentence  # the binding one here is the latency SLO
    # synthetic CPU = 100 * X / 250: 70% needs X = 175 req/s, beyond what the USL says
    # the system delivers, so throughput saturates first and CPU is never reached. (The
    # fit's kappa interval holds 0 here, so no X_max is printed: "the USL's reach".)
    cpu = next(c for c in h.constraints if c.name == "CPU service")
    assert cpu.basis == "not reached" and "throughput saturates first" in cpu.detail
    assert ("X_max" in cpu.detail) == (base_result.usl.x_max is not None)


def test_cpu_headroom_through_utilisation_law_and_usl(tmp_path):
    """CPU = 100 X / 90 reaches 70% at X = 63 req/s; the USL says at which users."""
    spec = SyntheticSpec(cpu_rps_at_100=90.0)
    r = analyze(load_run(write_run(tmp_path / "cpu", spec)))
    n_star = ((1 - spec.sigma) / spec.kappa) ** 0.5
    true_users = brentq(lambda n: usl_throughput(spec, n) - 63.0, 1, n_star)
    cpu = next(c for c in r.headroom.constraints if c.name == "CPU service")
    assert cpu.basis == "projected"
    assert cpu.load == pytest.approx(true_users, rel=0.05)
    assert cpu.ci[0] <= true_users <= cpu.ci[1]
    assert r.headroom.binding is cpu


def test_latency_slo_projection_close_to_truth(base_result):
    """Synthetic P95 crosses 3000 ms near 141 users (USL + Little + lognormal shape)."""
    slo = next(c for c in base_result.headroom.constraints if c.name == "latency SLO")
    assert slo.basis == "projected" and 125 < slo.load < 160


def test_counters_and_hit_rate():
    s = pd.DataFrame(
        {
            "ts_us": [0, 1, 2, 3, 0, 1, 2, 3],
            "source": ["service"] * 8,
            "metric": ["cache_hits"] * 4 + ["cache_misses"] * 4,
            "value": [0, 80, 5, 85, 0, 20, 20, 35],
            "labels": [""] * 8,
        }
    )
    # the hits counter reset after 80 (process restart): only increments are summed
    assert counter_delta(s, "service", "cache_hits") == 80 + 80
    assert counter_delta(s, "service", "nothing") is None
    rate, src = hit_rate(s)
    assert abs(rate - 160 / 195) < 1e-12 and "service" in src


def test_tiled_periods_add_up_to_the_whole_load():
    """Levels [0, 10 s) and [10 s, 20 s) with samples at 0, 9.5, 10.5, 19.5, 20.5 s: the
    increment between 9.5 s and 10.5 s belongs to one level only when tiled."""
    second = 1_000_000
    ts = [0, 9.5, 10.5, 19.5, 20.5]
    s = pd.DataFrame(
        {
            "ts_us": [int(t * second) for t in ts],
            "source": ["service"] * 5,
            "metric": ["db_connection_errors"] * 5,
            "value": [0, 3, 10, 12, 13],
            "labels": [""] * 5,
        }
    )
    levels = [(0, 10 * second), (10 * second, 20 * second)]
    whole, _ = counter_over_period(s, "service", "db_connection_errors", 0, 20 * second)
    bracketed = [counter_over_period(s, "service", "db_connection_errors", *w)[0] for w in levels]
    tiled = [
        counter_over_period(s, "service", "db_connection_errors", *w, tiled=True)[0] for w in levels
    ]
    assert whole == 13 and bracketed == [10, 10]  # the boundary second counted twice
    assert tiled == [3, 9] and sum(tiled) <= whole  # the last half second is the next's
    # A period with no sample at or after its end is unknown, tiled or not.
    late = counter_over_period(s, "service", "db_connection_errors", 0, 30 * second, tiled=True)
    assert late[0] is None and "after the load ended" in late[1]


def test_sentence_names_the_constraint_and_says_slo_only_for_slos():
    run = SimpleNamespace(phase=1)
    waits = Constraint(
        "PgBouncer client waits", "mean cl_waiting >= 1", "measured", 782.0, (750.0, 1000.0),
        None, False, "",
    )  # fmt: skip
    text = leadership_sentence(run, waits, 1000.0, [250, 500, 750, 1000])
    assert "First constraint reached: PgBouncer client waits at 782 users" in text
    assert "SLO" not in text
    slo = Constraint("latency SLO", "P95 < 2000 ms", "measured", 1200.0, (1000.0, 1250.0),
                     None, False, "")  # fmt: skip
    text = leadership_sentence(run, slo, 1000.0, [250, 500, 750, 1000, 1250])
    assert "latency SLO at 1,200 users" in text and "SLO capacity" in text
    # the point (83%) lies inside its interval (80%-100%)
    assert "83% (80%–100%)" in text


def _set_manifest(run_dir, tmp_path, **top_level):
    dst = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
    dst.mkdir()
    for child in run_dir.iterdir():
        if child.name != "manifest.json":
            (dst / child.name).symlink_to(child.resolve())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest.update(top_level)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_stripe_limit_comes_from_the_manifest(base_run_dir, tmp_path):
    """The limit is the stack's, as the manifest records it; never a constant."""
    r = analyze(load_run(_set_manifest(base_run_dir, tmp_path, stripe={"rate_limit_per_s": 3})))
    stripe = next(c for c in r.headroom.constraints if c.name == "Stripe rate limit")
    assert stripe.limit == "3 req/s" and stripe.basis in ("measured", "projected")
    r = analyze(load_run(base_run_dir))  # no stack settings recorded: no invented limit
    stripe = next(c for c in r.headroom.constraints if c.name == "Stripe rate limit")
    assert stripe.basis == "not available" and "manifest" in stripe.detail


def test_nothing_beyond_three_times_the_measured_load(base_result):
    """Synthetic memory grows 0.2 MB per user: 80% of 2 GiB is ~7,000 users, 70x the
    highest measured load; that is "beyond the measured range", not a number."""
    top = max(st.load for st in base_result.steps)
    mem = next(c for c in base_result.headroom.constraints if c.name == "memory service")
    assert mem.basis == BEYOND and mem.load is None and mem.lower_bound == top
    for c in base_result.headroom.constraints:
        if c.load is not None:
            assert c.load <= 3 * top, c
            assert c.ci[0] <= c.load <= c.ci[1], c


def test_projected_criteria_are_sanitised():
    top = SimpleNamespace(load=500.0)
    crit = CriterionResult(
        "error_rate", "errors < 1.00%", "projected fail", "projected", 16.63, (9.0, 20.0),
        1000.0, "",
    )  # fmt: skip
    out = sanitize_criterion(crit, top)
    assert out.value == 1.0 and out.ci[1] <= 1.0 and out.ci[0] <= out.value
    neg = CriterionResult("p95_ms", "P95 < 2000 ms", "projected pass", "projected", -448.0,
                          (-900.0, 10.0), 1000.0, "")  # fmt: skip
    assert sanitize_criterion(neg, top).value is None
    far = CriterionResult("p95_ms", "P95 < 2000 ms", "projected pass", "projected", 900.0,
                          (800.0, 1000.0), 1500.0, "")  # fmt: skip
    out = sanitize_criterion(far, SimpleNamespace(load=12.0))
    assert out.value is None and "beyond the measured range" in out.detail
