"""Gate logic: measured pass, measured fail, projected, inconclusive, invalid; exit codes;
per-route criteria, payment_pending, DB errors over the load period, the open-model gate."""

from __future__ import annotations

import pytest

import reports
from analysis import analyze, load_run
from analysis.gates import (
    FAIL,
    INCONCLUSIVE,
    INSUFFICIENT,
    PASS,
    PROJECTED_FAIL,
    PROJECTED_PASS,
)
from runformat.verdicts import EXIT_CODES, Verdict
from tests.synthetic import SyntheticSpec, write_run


@pytest.fixture
def result_with_gate(base_run_dir, tmp_path, with_manifest):
    def _make(name, **gate):
        gate.setdefault("target_users", 80)
        return analyze(load_run(with_manifest(base_run_dir, tmp_path / name, gate=gate)))

    return _make


def _status(result, key, route=None):
    return next(c for c in result.gate.criteria if c.name == key and c.route == route)


def test_measured_pass(result_with_gate):
    r = result_with_gate(
        "pass",
        users=100,
        criteria={
            "p95_ms": 5000,
            "error_rate": 0.01,
            "cache_hit_rate": 0.8,
            "db_connection_errors": 0,
            "job_completion_rate": 0.999,
        },
    )
    assert {c.status for c in r.gate.criteria} == {PASS}
    assert all(c.basis == "measured" for c in r.gate.criteria)
    assert r.verdict == "PASS" and r.gate.step == "hold5"
    assert reports.exit_code(r) == 0


def test_measured_fail(result_with_gate):
    r = result_with_gate("fail", users=100, criteria={"p95_ms": 500, "error_rate": 0.01})
    assert _status(r, "p95_ms").status == FAIL
    assert _status(r, "error_rate").status == PASS
    assert r.verdict == "FAIL" and reports.exit_code(r) == 1


def test_gate_load_not_reached_is_projected_never_pass(result_with_gate):
    r = result_with_gate(
        "proj", users=150, criteria={"p95_ms": 100_000, "error_rate": 0.5, "cache_hit_rate": 0.5}
    )
    assert r.gate.step is None
    for c in r.gate.criteria:
        assert c.basis == "projected"
        assert c.status == PROJECTED_PASS
        assert c.status != PASS
    p95 = _status(r, "p95_ms")
    assert p95.ci[0] <= p95.value <= p95.ci[1] and p95.load == 150
    assert r.verdict == Verdict.PROJECTED and reports.exit_code(r) == 3


def test_projected_fail(result_with_gate):
    r = result_with_gate("projfail", users=150, criteria={"p95_ms": 1000})
    assert _status(r, "p95_ms").status == PROJECTED_FAIL
    assert r.verdict == Verdict.PROJECTED and reports.exit_code(r) == 3


def test_insufficient_data(tmp_path, with_manifest):
    # 3 levels, short holds: at 30 users ~25 req/s x 3 s = too few records for a P95,
    # and fewer than 6 levels so nothing can be projected either.
    spec = SyntheticSpec(
        levels=(10, 20, 30),
        hold_s=6,
        ramp_s=2,
        warmup_s=2,
        gate={"users": 30, "criteria": {"p95_ms": 3000}},
    )
    r = analyze(load_run(write_run(tmp_path / "tiny", spec)))
    p95 = _status(r, "p95_ms")
    assert p95.status == INSUFFICIENT and "insufficient data" in p95.detail
    assert r.verdict == Verdict.INCONCLUSIVE and reports.exit_code(r) == 3
    r2 = analyze(
        load_run(
            with_manifest(
                tmp_path / "tiny",
                tmp_path / "tiny2",
                gate={"users": 60, "criteria": {"p95_ms": 3000}},
            )
        )
    )
    assert _status(r2, "p95_ms").status == INSUFFICIENT  # not applied, no USL to project
    assert "not applied" in _status(r2, "p95_ms").detail


def test_missing_counter_metrics_are_insufficient(base_run_dir, tmp_path, with_manifest):
    d = with_manifest(
        base_run_dir,
        tmp_path / "nosamples",
        gate={"users": 100, "criteria": {"p95_ms": 5000, "cache_hit_rate": 0.8}},
    )
    (d / "samples").unlink()
    r = analyze(load_run(d))
    assert _status(r, "cache_hit_rate").status == INSUFFICIENT
    assert r.verdict == Verdict.INCONCLUSIVE


def test_no_gate_is_baseline(result_with_gate):
    r = result_with_gate("nogate")
    assert r.verdict == "NO GATE" and reports.exit_code(r) == 0


@pytest.mark.parametrize("measured_fail", [True, False])
def test_regression_forces_exit_1(base_result, measured_fail):
    from analysis.compare import Comparison, EndpointComparison

    ep = EndpointComparison("overall", 100, 100, 1, 1, 0.1, 0.1, 0.001, "regression")
    comp = Comparison("a", "b", 0.05, 0.05, [], ep, [], "regression")
    assert reports.exit_code(base_result, comp) == 1


def test_run_without_hold_stages(base_run_dir, tmp_path, with_manifest):
    import json

    manifest = json.loads((base_run_dir / "manifest.json").read_text())
    ramps = [s for s in manifest["config"]["stages"] if s["kind"] == "ramp"]
    r = analyze(load_run(with_manifest(base_run_dir, tmp_path / "ramps", stages=ramps)))
    assert r.steps == [] and not r.usl.ok
    assert r.verdict == Verdict.PROJECTED and reports.exit_code(r) == 3
    assert any("no hold stages" in w for w in r.warnings)
    reports.write_all(r, tmp_path / "out")  # reports still render


@pytest.mark.parametrize("status", ["running", "interrupted", None])
def test_run_not_completed_is_invalid(tmp_path, status):
    """A killed run (status still running or missing) never passes: INVALID, exit 3."""
    spec = SyntheticSpec(
        status=status, gate={"users": 100, "criteria": {"p95_ms": 100_000, "error_rate": 0.5}}
    )
    r = analyze(load_run(write_run(tmp_path / "killed", spec)))
    assert {c.status for c in r.gate.criteria} == {PASS}  # the data alone would pass
    assert r.steps and r.verdict == Verdict.INVALID and reports.exit_code(r) == 3
    assert any("run_completed" in reason for reason in r.gate.reasons)
    assert any("did not run to its end" in reason for reason in r.gate.reasons)


def test_projection_straddling_the_threshold_decides_nothing(result_with_gate):
    probe = _status(result_with_gate("probe", users=150, criteria={"p95_ms": 1e6}), "p95_ms")
    r = result_with_gate("straddle", users=150, criteria={"p95_ms": probe.value})
    c = _status(r, "p95_ms")
    assert c.status == INSUFFICIENT and "inconclusive" in c.detail
    assert r.verdict == Verdict.PROJECTED


def test_measured_interval_straddling_the_limit_is_inconclusive(result_with_gate):
    probe = _status(result_with_gate("probe", users=100, criteria={"p95_ms": 1e6}), "p95_ms")
    assert probe.ci[0] < probe.value < probe.ci[1]
    r = result_with_gate("marginal", users=100, criteria={"p95_ms": probe.value * 1.01})
    c = _status(r, "p95_ms")
    assert c.status == INCONCLUSIVE and "straddles" in c.detail
    assert r.verdict == Verdict.INCONCLUSIVE and reports.exit_code(r) == 3
    # Just below the interval's low end: a clear FAIL; above its high end: a clear PASS.
    assert result_with_gate("low", users=100, criteria={"p95_ms": probe.ci[0] * 0.99}).verdict == (
        Verdict.FAIL
    )
    assert result_with_gate("high", users=100, criteria={"p95_ms": probe.ci[1] * 1.01}).verdict == (
        Verdict.PASS
    )


def test_verdict_table_is_the_design_table():
    assert {v.value: EXIT_CODES[v] for v in Verdict} == {
        "PASS": 0,
        "FAIL": 1,
        "INCONCLUSIVE": 3,
        "INVALID": 3,
        "PROJECTED": 3,
        "NO GATE": 0,
    }


def test_per_route_criteria_are_evaluated_like_pooled_ones(tmp_path):
    """POST /checkout has its own P95 and error rate; a slow checkout fails the gate even
    when the pooled P95 (dominated by cheap reads) passes."""
    probe = analyze(
        load_run(
            write_run(
                tmp_path / "probe",
                SyntheticSpec(gate={"users": 100, "criteria": {"p95_ms": 1e6}}),
            )
        )
    )
    step = next(s for s in probe.steps if s.step.name == probe.gate.step)
    pooled = step.latency.p(0.95)
    checkout = next(e for e in step.endpoints if e.endpoint == "POST /checkout").latency.p(0.95)
    assert checkout.ci_low_ms > pooled.ci_high_ms  # checkout is the slow route
    limit = (pooled.ci_high_ms + checkout.ci_low_ms) / 2
    gate = {
        "users": 100,
        "criteria": {"p95_ms": limit, "error_rate": 0.05},
        "routes": {"POST /checkout": {"p95_ms": limit, "error_rate": 0.05}},
    }
    r = analyze(load_run(write_run(tmp_path / "routes", SyntheticSpec(gate=gate))))
    assert _status(r, "p95_ms").status == PASS
    route_p95 = _status(r, "p95_ms", "POST /checkout")
    assert route_p95.status == FAIL and route_p95.value == checkout.value_ms
    assert route_p95.description.startswith("POST /checkout: P95")
    assert _status(r, "error_rate", "POST /checkout").status == PASS
    assert r.verdict == Verdict.FAIL and reports.exit_code(r) == 1


def test_payment_pending_is_its_own_class_with_a_criterion(tmp_path):
    """Stripe saturated: 20 % of checkouts deferred (202) are not errors, yet the gate
    does not pass silently: the payment_pending share criterion fails."""
    spec = SyntheticSpec(
        error_mix={},
        checkout_outcomes={"payment_pending": 0.2},
        gate={
            "users": 100,
            "criteria": {"p95_ms": 1e6, "error_rate": 0.01},
            "routes": {"POST /checkout": {"error_rate": 0.01, "payment_pending_rate": 0.01}},
        },
    )
    r = analyze(load_run(write_run(tmp_path / "stripe", spec)))
    assert _status(r, "error_rate").status == PASS  # 202 is not an error...
    pending = _status(r, "payment_pending_rate", "POST /checkout")
    assert pending.status == FAIL and 0.1 < pending.value < 0.3  # ...but it is counted
    assert r.verdict == Verdict.FAIL
    checkout = next(o for o in r.outcomes if o.route == "POST /checkout")
    assert checkout.payment_pending > 0 and checkout.errors == 0


def test_expected_outcomes_are_accepted_by_code_not_by_status(tmp_path):
    """Sold out (409 insufficient_stock) is expected; 409 insufficient_credits is a failure."""
    spec = SyntheticSpec(
        error_mix={},
        checkout_outcomes={"insufficient_stock": 0.3, "insufficient_credits": 0.1},
        gate={"users": 100, "routes": {"POST /checkout": {"error_rate": 0.2}}},
    )
    r = analyze(load_run(write_run(tmp_path / "outcomes", spec)))
    checkout = next(o for o in r.outcomes if o.route == "POST /checkout")
    assert checkout.outcomes["insufficient_stock"] == checkout.expected > 0
    assert checkout.errors == checkout.outcomes["insufficient_credits"] > 0
    err = _status(r, "error_rate", "POST /checkout")
    assert 0.05 < err.value < 0.15  # only insufficient_credits counts
    assert r.verdict == Verdict.PASS


def test_db_connection_errors_cover_the_whole_load_period(tmp_path):
    """Errors during ramps count too (not only in the gate step's window), and missing
    bracketing samples give "unknown", never 0."""
    spec = SyntheticSpec(
        db_connection_errors=40,
        gate={"users": 100, "criteria": {"db_connection_errors": 0}},
    )
    d = write_run(tmp_path / "db", spec)
    r = analyze(load_run(d))
    db = _status(r, "db_connection_errors")
    assert db.status == FAIL and db.value == pytest.approx(40, abs=0.5)
    # Without the sample after the load ended (a killed sampler): unknown, not 0.
    import pandas as pd

    f = d / "samples" / "sampler-0000.parquet"
    s = pd.read_parquet(f)
    end_us = load_run(d).load_end_us
    s[s.ts_us < end_us].to_parquet(f, index=False)
    r2 = analyze(load_run(d))
    db2 = _status(r2, "db_connection_errors")
    assert db2.value is None and db2.status == INSUFFICIENT and "unknown" in db2.detail
    assert r2.verdict == Verdict.INCONCLUSIVE


def test_a_gate_hold_check_brackets_counters_at_the_stage_it_cut(tmp_path):
    """During the load (status ``running``) a hold check cuts the gate stage where its
    data ends; the load goes on after it, so the period ends with the stage and a
    counter is decided by the samples around that end, not by a sample after the newest
    event (the samplers' flush has not written it yet). A finished run keeps its drain."""
    import json

    import pandas as pd

    spec = SyntheticSpec(
        db_connection_errors=0, status="running",
        gate={"users": 100, "criteria": {"db_connection_errors": 0}},
    )  # fmt: skip
    d = write_run(tmp_path / "held", spec)
    run = load_run(d)
    last_event = int(run.events.ts_us.max())
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["config"]["stages"][-1]["end_s"] -= 10.0  # where a check would look
    (d / "manifest.json").write_text(json.dumps(manifest))
    f = d / "samples" / "sampler-0000.parquet"
    samples = pd.read_parquet(f)
    samples[samples.ts_us < last_event - 3_000_000].to_parquet(f, index=False)

    db = _status(analyze(load_run(d)), "db_connection_errors")
    assert db.status != INSUFFICIENT and db.value == 0

    manifest["status"] = "completed"
    (d / "manifest.json").write_text(json.dumps(manifest))
    done = _status(analyze(load_run(d)), "db_connection_errors")
    assert done.status == INSUFFICIENT and done.value is None  # the drain is not sampled


def test_open_model_gate_is_an_arrival_rate(tmp_path):
    """The open model's gate load is a rate; its P95 is from the intended start; dropped
    arrivals count against the error criterion."""
    levels = (10, 20, 40)
    spec = SyntheticSpec(
        model="open", levels=levels, hold_s=40, error_mix={}, co_stall_ms=400, open_drop=0.03,
        validity={"arrival_shortfall": 0.5},
        gate={"users": 40, "rate": 0, "criteria": {"p95_ms": 1e6, "error_rate": 0.01}},
    )  # fmt: skip
    from tests.synthetic import usl_throughput

    spec.gate["rate"] = round(usl_throughput(spec, 40), 3)
    r = analyze(load_run(write_run(tmp_path / "open", spec)))
    assert r.gate.load_unit == "arrivals/s" and r.gate.gate_load == spec.gate["rate"]
    step = next(s for s in r.steps if s.step.name == r.gate.step)
    assert step.step.rate == spec.gate["rate"]
    p95 = _status(r, "p95_ms")
    assert p95.value == step.corrected_latency.p(0.95).value_ms  # intended start
    assert p95.value > step.latency.p(0.95).value_ms
    err = _status(r, "error_rate")
    assert err.status == FAIL and 0.01 < err.value < 0.05  # only drops, ~3 %
    assert "dropped arrivals" in err.detail
    assert r.verdict == Verdict.FAIL


@pytest.mark.parametrize(
    ("jobs", "status"),
    [((20, 20), INCONCLUSIVE), ((4000, 4000), PASS), ((4000, 3900), FAIL)],
)
def test_job_completion_needs_enough_jobs_to_show_its_rate(tmp_path, with_manifest, jobs, status):
    """The queue's counters decide, with an exact interval: 20 of 20 jobs cannot show 99.9 %."""
    src = write_run(tmp_path / "jobs", SyntheticSpec(jobs=jobs))
    gate = {"users": 100, "target_users": 80, "criteria": {"job_completion_rate": 0.999}}
    r = analyze(load_run(with_manifest(src, tmp_path / "jobs-gate", gate=gate)))
    c = _status(r, "job_completion_rate")
    assert c.basis == "measured" and c.status == status, c.detail
    assert c.value == pytest.approx(jobs[1] / jobs[0], abs=1e-3)
    if status == INCONCLUSIVE:
        assert "needs >= 3,688 jobs" in c.detail and r.verdict == Verdict.INCONCLUSIVE
