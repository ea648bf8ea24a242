"""Validity checks: Little's law, generator lag and CPU, window coverage, run completion,
coordinated omission, open-model arrivals, host CPU; a failed one at the gate step makes
the verdict INVALID."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import reports
from analysis import analyze, load_run
from runformat.verdicts import Verdict
from tests.synthetic import START_US, SyntheticSpec, write_run

GATE = {"users": 100, "criteria": {"p95_ms": 100_000, "error_rate": 0.5}}


def _checks(result, name):
    return [c for c in result.checks if c.name == name]


def test_closed_model_checks_pass(base_result):
    little = _checks(base_result, "littles_law")
    assert little and all(c.ok for c in little)
    assert all(c.ok for c in _checks(base_result, "generator_cpu"))
    assert all(c.ok is None for c in _checks(base_result, "offered_vs_achieved"))
    for st in base_result.steps:
        assert st.corrected_latency is not None  # the HdrHistogram-corrected view exists


def test_generator_saturation_is_flagged(base_run_dir, copy_run):
    d = copy_run(base_run_dir)
    t = START_US + pd.Series(range(0, 450)).to_numpy() * 1_000_000
    pq.write_table(
        pa.table(
            {
                "ts_us": t,
                "source": ["generator"] * len(t),
                "metric": ["cpu_percent"] * len(t),
                "value": [99.0] * len(t),
                "labels": ['{"worker": "w1"}'] * len(t),
            }
        ),
        d / "samples" / "sampler-hot.parquet",
    )
    r = analyze(load_run(d))
    gen = _checks(r, "generator_cpu")
    assert gen and not any(c.ok for c in gen)
    assert r.verdict == Verdict.INVALID  # base run has a gate at 100 users
    assert any("generator_cpu" in reason for reason in r.gate.reasons)


def test_generator_lag_makes_the_verdict_invalid(tmp_path):
    """A worker whose event loop oversleeps by tens of ms: its timings are distorted, so a
    gate that the latencies alone would pass is INVALID (exit 3), with what to change."""
    ok = analyze(load_run(write_run(tmp_path / "ok", SyntheticSpec(gate=GATE))))
    assert ok.verdict == Verdict.PASS
    lag = next(c for c in _checks(ok, "generator_lag") if c.step == ok.gate.step)
    assert lag.ok and lag.observed < 10
    spec = SyntheticSpec(gate=GATE, generator_lag_ms=8.0)  # exponential: P99 ~ 37 ms
    r = analyze(load_run(write_run(tmp_path / "lag", spec)))
    lag = next(c for c in _checks(r, "generator_lag") if c.step == r.gate.step)
    assert lag.ok is False and lag.observed > 10 and lag.expected == 10
    assert r.verdict == Verdict.INVALID and reports.exit_code(r) == 3
    assert any("generator_lag" in reason for reason in r.gate.reasons)
    assert any("fewer users per worker" in a and "--target" in a for a in r.gate.advice)
    # The bound is the config's: a looser bound accepts the same data.
    loose = SyntheticSpec(gate=GATE, generator_lag_ms=8.0, validity={"generator_lag_p99_ms": 80})
    assert analyze(load_run(write_run(tmp_path / "loose", loose))).verdict == Verdict.PASS


def test_uncovered_window_makes_the_verdict_invalid(tmp_path):
    """The gate step's steady window must hold data over >= 90 % of its length."""
    d = write_run(tmp_path / "gap", SyntheticSpec(gate=GATE))
    run = load_run(d)
    step = next(s for s in analyze(run).steps if s.step.name == "hold5")
    cut = step.step.start_us + int(0.7 * (step.step.end_us - step.step.start_us))
    for f in (d / "events").glob("*.parquet"):
        t = pq.read_table(f)
        keep = pa.compute.or_(
            pa.compute.less(t["ts_us"], step.step.start_us),
            pa.compute.less(t["ts_us"], cut),
        )
        pq.write_table(t.filter(keep), f)
    r = analyze(load_run(d))
    cov = next(c for c in _checks(r, "window_coverage") if c.step == "hold5")
    assert cov.ok is False and 0.6 < cov.observed < 0.8
    assert r.verdict == Verdict.INVALID


def test_littles_law_mismatch_makes_the_verdict_invalid(base_run_dir, tmp_path, with_manifest):
    """Think time twice the configured one: users were not active as the config says."""
    d = with_manifest(base_run_dir, tmp_path / "little", think_time_s=[2.0, 4.0], gate=GATE)
    r = analyze(load_run(d))
    little = next(c for c in _checks(r, "littles_law") if c.step == r.gate.step)
    assert little.ok is False
    assert r.verdict == Verdict.INVALID


def test_host_cpu_is_shown_beside_the_verdict(tmp_path):
    spec = SyntheticSpec(gate=GATE, host_cpu_percent=97.0)
    r = analyze(load_run(write_run(tmp_path / "host", spec)))
    assert r.gate.host_cpu_percent > 90
    assert r.verdict == Verdict.PASS  # shown, not deciding
    assert any("separate hardware" in a for a in r.gate.advice)
    notes = "\n".join(r.gate.notes())
    assert "Whole-host CPU at the gate step: 9" in notes
    md = reports.markdown.render(r)
    assert "Whole-host CPU" in md and "separate hardware" in md


def test_open_model_arrivals_and_coordinated_omission(tmp_path):
    spec = SyntheticSpec(
        model="open",
        open_drop=0.05,
        co_stall_ms=2000,
        gate={"users": 100, "rate": 1, "criteria": {"p95_ms": 3000}},
    )
    r = analyze(load_run(write_run(tmp_path / "open", spec)))
    arr = _checks(r, "offered_vs_achieved")
    assert arr and all(c.ok is False for c in arr)
    assert r.verdict == Verdict.INVALID  # 5 % of arrivals dropped at the gate step
    assert all(c.observed < c.expected for c in arr)
    co = [c for c in _checks(r, "coordinated_omission") if c.ok is not None]
    assert co and all(c.ok is False for c in co)
    for st in r.steps:
        if st.latency.p(0.5).ok:
            assert st.corrected_latency.p(0.5).value_ms > st.latency.p(0.5).value_ms
    # open model: USL concurrency comes from Little's law, loads are the offered rates
    assert r.steps[0].step.rate is not None and r.steps[0].load == r.steps[0].step.rate


def test_open_model_without_drops_is_valid(tmp_path):
    spec = SyntheticSpec(
        model="open",
        levels=(10, 20, 40),
        hold_s=30,
        gate={"users": 40, "criteria": {"p95_ms": 3000}},
    )
    r = analyze(load_run(write_run(tmp_path / "open_ok", spec)))
    assert all(c.ok for c in _checks(r, "offered_vs_achieved"))


def test_hdr_backfill_matches_hdrhistogram_rule():
    """recordValueWithExpectedInterval(35, 10) records 35, 25, 15 (not 5)."""
    import numpy as np

    from analysis.step_stats import hdr_corrected

    out = hdr_corrected(np.array([10, 35, 20], dtype=np.int64), 10)
    assert sorted(out.tolist()) == [10, 10, 15, 20, 25, 35]
    assert hdr_corrected(np.array([1, 2], dtype=np.int64), 10).tolist() == [1, 2]


def test_invalid_verdict_reaches_every_report(tmp_path):
    """INVALID with its reason in Markdown, JSON, HTML and as a JUnit failure."""
    import json
    import xml.etree.ElementTree as ET

    spec = SyntheticSpec(gate=GATE, status="running")
    r = analyze(load_run(write_run(tmp_path / "killed", spec)))
    paths = reports.write_all(r, tmp_path / "out")
    doc = json.loads(paths.json.read_text())
    assert doc["verdict"] == "INVALID" and doc["exit_code"] == 3
    assert any("run_completed" in reason for reason in doc["gate"]["reasons"])
    assert "**INVALID**" in paths.md.read_text() and "run_completed" in paths.md.read_text()
    assert "run_completed" in paths.html.read_text()
    suite = ET.parse(paths.junit).getroot()
    assert int(suite.get("failures")) >= 1
    assert any(c.get("name") == "validity" for c in suite.findall("testcase"))
