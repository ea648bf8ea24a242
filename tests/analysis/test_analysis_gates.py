"""Gate logic: measured pass, measured fail, projected, insufficient data; exit codes."""

from __future__ import annotations

import pytest

import reports
from analysis import analyze, load_run
from analysis.gates import FAIL, INSUFFICIENT, PASS, PROJECTED_FAIL, PROJECTED_PASS
from analysis.synthetic import SyntheticSpec, write_run


@pytest.fixture
def result_with_gate(base_run_dir, tmp_path, with_manifest):
    def _make(name, **gate):
        return analyze(load_run(with_manifest(base_run_dir, tmp_path / name, gate=gate)))

    return _make


def _status(result, key):
    return next(c for c in result.gate.criteria if c.name == key)


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
    assert r.verdict == "PROJECTED PASS" and reports.exit_code(r) == 3


def test_projected_fail(result_with_gate):
    r = result_with_gate("projfail", users=150, criteria={"p95_ms": 1000})
    assert _status(r, "p95_ms").status == PROJECTED_FAIL
    assert r.verdict == "PROJECTED FAIL" and reports.exit_code(r) == 3


def test_insufficient_data(tmp_path, with_manifest):
    # 3 levels, short holds: at 30 users ~25 req/s x 3 s = too few records for a P95,
    # and fewer than 6 levels so nothing can be projected either.
    spec = SyntheticSpec(
        levels=(10, 20, 30),
        hold_s=6,
        ramp_s=2,
        warmup_s=2,
        gate={"users": 30, "criteria": {"p95_ms": 3000, "widgets": 1}},
    )
    r = analyze(load_run(write_run(tmp_path / "tiny", spec)))
    p95 = _status(r, "p95_ms")
    assert p95.status == INSUFFICIENT and "insufficient data" in p95.detail
    assert _status(r, "widgets").status == INSUFFICIENT
    assert r.verdict == "INSUFFICIENT DATA" and reports.exit_code(r) == 3
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
    assert r.verdict == "INSUFFICIENT DATA"


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
    assert r.verdict == "INSUFFICIENT DATA" and reports.exit_code(r) == 3
    assert any("no hold stages" in w for w in r.warnings)
    reports.write_all(r, tmp_path / "out")  # reports still render


def test_killed_run_is_analysed_with_warning(base_run_dir, tmp_path):
    import json
    import shutil

    d = tmp_path / "killed"
    shutil.copytree(base_run_dir, d)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["exit_status"] = "running"
    (d / "manifest.json").write_text(json.dumps(manifest))
    r = analyze(load_run(d))
    assert any("did not finish cleanly" in w for w in r.warnings)
    assert r.steps and r.gate.criteria


def test_projection_straddling_the_threshold_decides_nothing(result_with_gate):
    probe = _status(result_with_gate("probe", users=150, criteria={"p95_ms": 1e6}), "p95_ms")
    r = result_with_gate("straddle", users=150, criteria={"p95_ms": probe.value})
    c = _status(r, "p95_ms")
    assert c.status == INSUFFICIENT and "inconclusive" in c.detail
    assert r.verdict == "INSUFFICIENT DATA"


def test_measured_marginal_keeps_point_verdict(result_with_gate):
    probe = _status(result_with_gate("probe", users=100, criteria={"p95_ms": 1e6}), "p95_ms")
    assert probe.ci[0] < probe.value < probe.ci[1]
    c = _status(
        result_with_gate("marginal", users=100, criteria={"p95_ms": probe.value * 1.01}), "p95_ms"
    )
    assert c.status == PASS and "marginal" in c.detail
