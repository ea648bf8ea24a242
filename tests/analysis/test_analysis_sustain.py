"""Every gate run ends decided (issue 20): overload FAILs, far inside PASSes, near the
limit stays INCONCLUSIVE; MSER-5 finds the warm-up; zero errors follow the rule of three.

Synthetic run directories (``tests.synthetic``) with realistic per-second dependence:
an AR(1) factor on every second's latencies.  The gate hold is 90 s (phase 1's final
hold); every case runs on 3 seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis import analyze, load_run, sustain
from analysis.gates import FAIL, INCONCLUSIVE, INSUFFICIENT, PASS
from analysis.steps import MSER_MAX_FRACTION, mser_truncation
from runformat.verdicts import Verdict
from tests.synthetic import SyntheticSpec, true_quantile, write_run

SEEDS = (1, 2, 3)
GATE_HOLD_S = 90.0


def _spec(seed: int, p95_limit: float = 2000, **kw) -> SyntheticSpec:
    base = dict(
        levels=(25, 50, 100),
        hold_s=GATE_HOLD_S,
        ramp_s=10.0,
        warmup_s=5.0,
        sigma=0.0,
        kappa=0.0,
        seed=seed,
        gate={"users": 100, "criteria": {"p95_ms": p95_limit, "error_rate": 0.01}},
    )
    base.update(kw)
    return SyntheticSpec(**base)


#: Overloaded stack: every request 2.5-12 s (R = N / X - Z = 5 s at 100 users, Z = 1 s),
#: rising through the hold, generator lag ~1 ms mean (P99 ~5 ms: valid).
OVERLOAD = dict(
    lam=1 / 6,
    latency_sigma=0.3,
    latency_clip_ms=(2500, 12000),
    latency_drift_per_s=0.015,
    latency_ar_rho=0.99,
    latency_ar_sd=0.1,
    generator_lag_ms=1.0,
)
#: Healthy, autocorrelated: P95 ~ 250-400 ms against 2 s, 0.05 % errors, a per-second
#: memory long enough that the batch-means interval is often refused in 90 s.
HEALTHY = dict(lam=0.88, latency_ar_rho=0.98, latency_ar_sd=0.3, error_mix={"5xx": 0.0005})


def _gate(tmp_path, name: str, spec: SyntheticSpec):
    return analyze(load_run(write_run(tmp_path / name, spec)))


def _p95(result):
    return next(c for c in result.gate.criteria if c.name == "p95_ms")


@pytest.mark.parametrize("seed", SEEDS)
def test_overloaded_gate_fails_with_its_reason(tmp_path, seed):
    r = _gate(tmp_path, f"over{seed}", _spec(seed, **OVERLOAD))
    c = _p95(r)
    assert r.gate.verdict == Verdict.FAIL, r.gate.notes()
    assert c.status == FAIL
    assert "above 2,000 ms in every" in c.detail
    assert "does not sustain 100 users" in c.detail


@pytest.mark.parametrize("seed", SEEDS)
def test_healthy_autocorrelated_gate_passes_in_the_default_hold(tmp_path, seed):
    r = _gate(tmp_path, f"ok{seed}", _spec(seed, **HEALTHY))
    assert r.gate.verdict == Verdict.PASS, [(c.description, c.status, c.detail) for c in
                                            r.gate.criteria]  # fmt: skip
    assert all(c.status == PASS for c in r.gate.criteria)


def test_healthy_gate_passes_where_the_interval_is_refused(tmp_path):
    """The far-inside rule is what decides when the window is too short for the memory."""
    refused = 0
    for seed in SEEDS:
        r = _gate(tmp_path, f"mem{seed}", _spec(seed, **HEALTHY))
        q = r.steps[-1].latency.p(0.95)
        if not q.has_interval:
            refused += 1
            assert _p95(r).status == PASS
            assert "below 50% of 2,000 ms in every" in _p95(r).detail
    assert refused >= 1  # the case the issue is about occurs in this set


#: Near the limit: memory ~39 s (AR(1) 0.95 per second), twice the longest of the
#: interval coverage tests.  (With memory longer than the window itself, 0.98: ~99 s,
#: a whole 90 s window can sit 20 % off the long-run P95 and the batch-means interval
#: is then wrong in ~1 of 10 runs: docs/statistics.md "Limits".)
NEAR = dict(lam=0.88, latency_ar_rho=0.95, latency_ar_sd=0.25, error_mix={"5xx": 0.0005})


@pytest.mark.parametrize("seed", range(1, 6))
@pytest.mark.parametrize("side", [0.96, 1.04])
def test_p95_near_its_limit_is_never_decided_on_the_wrong_side(tmp_path, seed, side):
    """Limit 4 % below the true P95 (truth fails): never PASS; 4 % above: never FAIL."""
    spec = _spec(seed, **NEAR)
    limit = round(side * true_quantile(spec, 100, 0.95), 1)
    spec = _spec(seed, p95_limit=limit, **NEAR)
    c = _p95(_gate(tmp_path, f"near{seed}-{side}", spec))
    wrong = PASS if side < 1 else FAIL
    assert c.status != wrong, c.detail
    assert c.status in (INCONCLUSIVE, INSUFFICIENT, PASS, FAIL)


def test_true_quantile_matches_a_long_independent_sample():
    spec = SyntheticSpec(levels=(100,), hold_s=2000.0, ramp_s=0.0, sigma=0.0, kappa=0.0,
                         lam=0.88, seed=5)  # fmt: skip
    from tests.synthetic import _records, stages

    rec = _records(spec, stages(spec)[0], np.random.default_rng(5))
    empirical = float(np.quantile(rec["lat"], 0.95)) / 1000.0
    assert empirical == pytest.approx(true_quantile(spec, 100, 0.95), rel=0.02)


def test_rising_latency_below_the_limit_is_held_not_passed():
    """A P95 rising fast toward its limit: not steady yet, never a PASS."""
    t = np.arange(9) * 10.0 + 5.0
    values = 800.0 + 12.0 * t  # 860 ms .. 1,820 ms, limit 2,000 ms
    b = sustain.Batches(t, values, 10.0, 90.0)
    d = sustain.decide(b, 2000.0, lambda v: f"{v:,.0f} ms")
    assert d.status == sustain.RISING
    assert "rising 12 ms/s" in d.reason


def test_rising_far_past_the_limit_fails():
    """The issue's overload: above 2 s throughout and rising ~31 ms/s to over twice it."""
    t = np.arange(9) * 10.0 + 5.0
    rng = np.random.default_rng(3)
    values = 5000.0 + 31.0 * t + rng.normal(0, 30, t.size)
    d = sustain.decide(sustain.Batches(t, values, 10.0, 90.0), 2000.0, lambda v: f"{v:.0f}")
    assert d.status == sustain.FAIL
    assert "above 2000 in every 10 s of the 90 s window, rising 3" in d.reason


def test_rising_just_past_the_limit_is_held_not_failed():
    """A rise across the limit but not far beyond it: a long-memory wander looks the
    same inside one window, so the step is held (the interval may still FAIL it)."""
    t = np.arange(9) * 10.0 + 5.0
    rng = np.random.default_rng(3)
    values = 1200.0 + 31.0 * t + rng.normal(0, 30, t.size)  # crosses 2 s mid-window
    d = sustain.decide(sustain.Batches(t, values, 10.0, 90.0), 2000.0, lambda v: f"{v:.0f}")
    assert d.status == sustain.RISING
    assert "hold the step longer" in d.reason


def test_far_above_and_flat_fails():
    t = np.arange(6) * 10.0 + 5.0
    values = np.array([8400.0, 8600, 8300, 8550, 8450, 8500])
    d = sustain.decide(sustain.Batches(t, values, 10.0, 60.0), 2000.0, lambda v: f"{v:.0f}")
    assert d.status == sustain.FAIL and "over 1.5x the limit" in d.reason


def test_held_above_one_and_a_half_times_the_limit_fails_without_a_trend():
    """The main job's shape: every batch 2-4x the limit, no significant trend (the queue
    filled during the ramp), autocorrelated: held above the limit, a FAIL."""
    rng = np.random.default_rng(7)
    t = np.arange(10) * 10.0 + 5.0
    level = 6000.0 * np.exp(np.cumsum(rng.normal(0, 0.12, t.size)) * 0.5)
    values = np.clip(level, 4100, 7500)
    d = sustain.decide(sustain.Batches(t, values, 10.0, 100.0), 2000.0, lambda v: f"{v:.0f}")
    assert d.status == sustain.FAIL and "level" in d.reason


def test_above_the_limit_but_not_by_half_again_is_not_failed_by_the_course():
    """Every batch above the limit by 5-25 %: could be a stationary value near its limit
    with long memory; the course leaves it to the interval (never a FAIL here)."""
    t = np.arange(9) * 10.0 + 5.0
    values = 2000.0 * np.array([1.05, 1.2, 1.25, 1.1, 1.15, 1.08, 1.22, 1.12, 1.18])
    d = sustain.decide(sustain.Batches(t, values, 10.0, 90.0), 2000.0, str)
    assert d.status is None


def test_flat_noisy_batches_near_the_limit_decide_nothing():
    rng = np.random.default_rng(4)
    t = np.arange(9) * 10.0 + 5.0
    values = 2000.0 * (1 + rng.normal(0, 0.05, t.size))
    d = sustain.decide(sustain.Batches(t, values, 10.0, 90.0), 2000.0, str)
    assert d.status is None


def test_short_window_gives_no_batches():
    ts = np.arange(0, 30_000_000, 10_000)  # 30 s: 3 batches of 10 s < MIN_BATCHES
    assert sustain.batch_quantiles(np.ones(ts.size), ts, 0, 30_000_000, 0.95) is None
    assert sustain.decide(None, 1.0, str).status is None


def test_mser_finds_a_warm_up_and_stays_within_its_bound():
    counts = np.full(18, 100.0)
    level = np.r_[np.linspace(3.0, 1.0, 4), np.ones(14)]  # 4 batches settling, then flat
    rng = np.random.default_rng(2)
    sums = (level + rng.normal(0, 0.02, 18)) * counts
    d, at_bound = mser_truncation(sums, counts)
    assert 3 <= d < int(MSER_MAX_FRACTION * 18) and not at_bound  # the settling part is cut
    rising = np.linspace(1.0, 3.0, 18) * counts  # never steady: MSER runs to its bound
    d, at_bound = mser_truncation(rising, counts)
    assert at_bound and d == int(MSER_MAX_FRACTION * 18)


def test_mser_truncation_is_recorded_per_step(tmp_path):
    spec = _spec(1, **HEALTHY)
    r = _gate(tmp_path, "trunc", spec)
    for st in r.steps:
        assert st.step.truncation
        assert spec.warmup_s <= st.step.truncated_s <= MSER_MAX_FRACTION * GATE_HOLD_S
        assert st.step.duration_s == pytest.approx(GATE_HOLD_S - st.step.truncated_s, abs=1)


@pytest.mark.parametrize("n, decided", [(100, INCONCLUSIVE), (60_000, PASS)])
def test_zero_errors_follow_the_rule_of_three(n, decided):
    """No error in n requests bounds the rate near 3 / n: 100 requests cannot show < 1 %,
    60,000 can show < 0.01 % (the bound is ~4.2 / n here: Wilson at t on 29 df)."""
    from analysis.intervals import ratio_interval

    limit = 0.01 if n == 100 else 0.0001
    ri = ratio_interval(np.zeros(60), np.full(60, n / 60))
    assert ri.ok and ri.low == pytest.approx(0.0, abs=1e-12)
    assert 3 / n < ri.high < 4.5 / n
    assert (PASS if ri.high < limit else INCONCLUSIVE) == decided


def test_a_run_still_going_is_analysed_up_to_its_data(tmp_path):
    """``analyze(run, until_us)`` (holding the gate step): the gate window ends at
    ``until_us``; an overloaded gate FAILs 50 s into its hold, a healthy one that is
    not yet decided says so in its criterion statuses."""
    from tests.synthetic import START_US, stages

    spec = _spec(1, **OVERLOAD)
    hold = stages(spec)[-1]
    until = START_US + int((hold["start_s"] + 50) * 1e6)
    run = load_run(write_run(tmp_path / "partial", spec))
    r = analyze(run, until_us=until)
    st = r.steps[-1]
    assert st.step.end_us == until and st.step.duration_s <= 50
    assert r.gate.step == st.step.name
    assert _p95(r).status == FAIL
    # 10 s into the hold (5 s after the minimum warm-up): nothing decided, hold on
    early = analyze(run, until_us=START_US + int((hold["start_s"] + 10) * 1e6))
    assert {c.status for c in early.gate.criteria} <= {INSUFFICIENT, INCONCLUSIVE}
    assert early.gate.verdict not in (Verdict.PASS, Verdict.FAIL)


def test_undecided_lists_what_a_longer_hold_could_decide(tmp_path):
    spec = _spec(1, **OVERLOAD)
    run = load_run(write_run(tmp_path / "und", spec))
    from tests.synthetic import START_US, stages

    hold = stages(spec)[-1]
    early = analyze(run, until_us=START_US + int((hold["start_s"] + 10) * 1e6)).gate
    assert {c.name for c in early.undecided} == {"p95_ms", "error_rate"}
    assert not [c for c in analyze(run).gate.undecided if c.name == "p95_ms"]
