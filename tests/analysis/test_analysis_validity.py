"""Validity checks: Little's law, generator CPU, coordinated omission, open-model arrivals."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis import analyze, load_run
from analysis.synthetic import START_US, SyntheticSpec, write_run


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
                "metric": ["generator_cpu_percent"] * len(t),
                "value": [99.0] * len(t),
                "labels": ['{"worker": "w1"}'] * len(t),
            }
        ),
        d / "samples" / "sampler-hot.parquet",
    )
    r = analyze(load_run(d))
    gen = _checks(r, "generator_cpu")
    assert gen and not any(c.ok for c in gen)
    assert any("generator_cpu" in w for w in r.warnings)


def test_open_model_arrivals_and_coordinated_omission(tmp_path):
    spec = SyntheticSpec(
        model="open",
        open_drop=0.05,
        co_stall_ms=2000,
        gate={"users": 100, "criteria": {"p95_ms": 3000}},
    )
    r = analyze(load_run(write_run(tmp_path / "open", spec)))
    arr = _checks(r, "offered_vs_achieved")
    assert arr and all(c.ok is False for c in arr)
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

    from analysis.steps import hdr_corrected

    out = hdr_corrected(np.array([10, 35, 20], dtype=np.int64), 10)
    assert sorted(out.tolist()) == [10, 10, 15, 20, 25, 35]
    assert hdr_corrected(np.array([1, 2], dtype=np.int64), 10).tolist() == [1, 2]
