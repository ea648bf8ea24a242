"""Loading run directories: truncated files, format errors, dictionary columns."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis import RunFormatError, analyze, load_run
from analysis.steps import assign_steps, build_steps
from tests.synthetic import ENDPOINTS, truncate_last_events_file


def test_truncated_file_is_skipped_with_warning(base_run_dir, copy_run):
    d = copy_run(base_run_dir)
    n_before = len(load_run(d).events)
    bad = truncate_last_events_file(d)
    with pytest.warns(UserWarning, match="truncated"):
        run = load_run(d)
    assert len(run.events) == n_before
    assert any(bad.name in w for w in run.warnings)
    assert any(bad.name in w for w in analyze(run).warnings)


def test_not_a_run_directory(tmp_path):
    with pytest.raises(RunFormatError, match="manifest"):
        load_run(tmp_path)
    manifest = {"started_at": "2026-01-01T00:00:00Z"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunFormatError, match="no config"):
        load_run(tmp_path)
    manifest["config"] = {"stages": [{"name": "h", "start_s": 0, "end_s": 60, "users": 1}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunFormatError, match="events"):
        load_run(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(RunFormatError):
        load_run(tmp_path)


def test_columns_and_categories(base_run_dir):
    run = load_run(base_run_dir)
    ev = run.events
    assert sorted(ev.endpoint.categories) == sorted(f"{m} {n}" for m, n, _, _ in ENDPOINTS)
    assert ev.ts_us.dtype == np.int64 and ev.latency_us.dtype == np.int64
    assert "" in ev.error_class.categories and "5xx" in ev.error_class.categories
    assert run.faults and run.faults[0]["kind"] == "kill"
    assert run.model == "closed" and run.phase == 1


def test_steps_exclude_ramps_and_warmup(base_run_dir):
    run = load_run(base_run_dir)
    steps = build_steps(run)
    assert [s.users for s in steps] == [10, 20, 40, 60, 80, 100]
    holds = [s for s in run.stages if s.kind == "hold"]
    for step, stage in zip(steps, holds, strict=True):
        # MSER-5 finds the warm-up, never below warmup_s = 5 nor above half the hold
        assert 5 <= step.truncated_s <= (stage.end_s - stage.start_s) / 2
        assert step.start_us == run.start_us + int((stage.start_s + step.truncated_s) * 1e6)
        assert step.truncation
    idx = assign_steps(run.events.ts_us, steps)
    ramp_users = run.events.users[idx == -1]
    assert (idx == -1).any() and ramp_users.size
    inside = idx >= 0
    assert np.all(run.events.users[inside] == np.array([s.users for s in steps])[idx[inside]])


def test_load_started_at_is_the_stage_origin(base_run_dir, tmp_path):
    import shutil

    d = tmp_path / "shifted"
    shutil.copytree(base_run_dir, d)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["load_started_at"] = "2026-11-01T00:00:08+00:00"
    (d / "manifest.json").write_text(json.dumps(manifest))
    shifted, plain = build_steps(load_run(d)), build_steps(load_run(base_run_dir))
    # the hold starts 8 s later (the cut MSER-5 finds in the data may differ)
    assert [
        (a.start_us - int(a.truncated_s * 1e6)) - (b.start_us - int(b.truncated_s * 1e6))
        for a, b in zip(shifted, plain, strict=True)
    ] == [8_000_000] * 6


def test_synthetic_run_is_written_in_the_one_format(base_run_dir, tmp_path):
    """The synthetic generator writes the schemas and manifest ``loadgate run`` writes."""
    import pyarrow.parquet as pq

    from runformat.manifest import read_manifest
    from runformat.schemas import ARRIVAL_SCHEMA, EVENT_SCHEMA, SAMPLE_SCHEMA

    for sub, schema in (("events", EVENT_SCHEMA), ("samples", SAMPLE_SCHEMA)):
        for f in (base_run_dir / sub).glob("*.parquet"):
            assert pq.read_schema(f).remove_metadata().equals(schema), f
    meta = read_manifest(base_run_dir)
    assert meta.status == "completed" and meta.completed
    assert meta.gate.users == 100 and meta.gate.criteria["p95_ms"] == 3000
    assert meta.validity.generator_lag_p99_ms == 10
    assert "exit_status" not in json.loads((base_run_dir / "manifest.json").read_text())
    from tests.synthetic import SyntheticSpec, write_run

    open_run = write_run(tmp_path / "open", SyntheticSpec(model="open", levels=(10,), hold_s=10))
    for f in (open_run / "arrivals").glob("*.parquet"):
        assert pq.read_schema(f).remove_metadata().equals(ARRIVAL_SCHEMA)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"status": "ok"}, "status"),  # only runformat's statuses
        ({"config": {"gate": {"p95_ms": 2000, "users": 10}}}, "gate: unknown key 'p95_ms'"),
        ({"config": {"gate": {"criteria": {"p95": 2000}}}}, "unknown criterion 'p95'"),
        ({"config": {"gate": {"criteria": {"error_rate": 5}}}}, "error_rate is a fraction"),
        (
            {"config": {"gate": {"routes": {"GET /x": {"cache_hit_rate": 0.9}}}}},
            "not a per-route criterion",
        ),
        ({"config": {"validity": {"lag": 3}}}, "validity: unknown key 'lag'"),
    ],
)
def test_manifest_accepts_one_dialect(base_run_dir, tmp_path, change, needle):
    import shutil

    d = tmp_path / "dialect"
    shutil.copytree(base_run_dir, d)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest.update(change)
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunFormatError, match=needle):
        load_run(d)


def test_lost_gate_data_is_named_in_the_verdict_block(base_run_dir, copy_run):
    """One of ~20 flushes of a worker in the gate window cut in half: the verdict block
    names the file and the seconds it covers; window coverage counts them as holes."""
    from runformat.verdicts import Verdict
    from tests.synthetic import SyntheticSpec, split_events_file, stages, truncate_events_file

    d = copy_run(base_run_dir)
    last = len(stages(SyntheticSpec())) - 1  # the gate hold's files: w0-<last>, w1-<last>
    parts = split_events_file(d, f"w0-{last:04d}.parquet", 20)
    bad = truncate_events_file(parts[10])
    with pytest.warns(UserWarning, match="truncated"):
        run = load_run(d)
    assert [f.name for f in run.lost_events] == [bad.name]
    lost = run.lost_events[0]
    assert lost.from_us is not None and lost.to_us is not None
    assert 1.5e6 < lost.to_us - lost.from_us < 6e6  # one flush of ~3 s
    result = analyze(run)
    gate = result.gate
    assert gate.lost_files == 1
    text = next(r for r in gate.reasons if r.startswith("lost data"))
    assert bad.name in text and "1 unreadable events file" in text and "gate window" in text
    coverage = next(c for c in result.checks if c.name == "window_coverage" and
                    c.step == gate.step)  # fmt: skip
    assert coverage.observed < 1.0 and bad.name in coverage.detail
    assert gate.verdict != Verdict.INVALID  # ~3 s of 55+ s: coverage still >= 90 %

    # Half the records of a worker through the whole gate window: coverage decides INVALID.
    for p in parts:
        truncate_events_file(p)
    with pytest.warns(UserWarning, match="truncated"):
        gate = analyze(load_run(d)).gate
    assert gate.verdict == Verdict.INVALID
    assert any("window_coverage" in r for r in gate.reasons)
    assert gate.lost_files == 20


def test_missing_column_is_named(base_run_dir, copy_run):
    """A file without a required column is a format error naming it; ``outcome`` (newer
    than the first run directories) may be absent and reads as ""."""
    import pyarrow.parquet as pq

    d = copy_run(base_run_dir)
    files = sorted((d / "events").glob("*.parquet"))
    for f in files:
        pq.write_table(pq.read_table(f).drop_columns(["outcome"]), f)
    run = load_run(d)
    assert set(run.events.outcome.categories) == {""}
    assert analyze(run).gate.verdict is not None
    pq.write_table(pq.read_table(files[0]).drop_columns(["users"]), files[0])
    with pytest.raises(RunFormatError, match="missing column users"):
        load_run(d)


def test_phase_manifest_without_config_is_a_harness_error(base_run_dir, copy_run):
    """Not NO GATE, exit 0: the gate is unknown (docs/run-directory.md, manifest.json)."""
    d = copy_run(base_run_dir)
    manifest = json.loads((d / "manifest.json").read_text())
    config = manifest.pop("config")
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunFormatError, match="no config"):
        load_run(d)
    manifest["config"] = {k: v for k, v in config.items() if k != "gate"}
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunFormatError, match="no gate, but phase 1 has one"):
        load_run(d)
