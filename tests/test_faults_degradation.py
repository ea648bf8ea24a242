"""Graceful degradation measured on synthetic runs with known answers: a breaker that
opens after 4 s and closes 20 s after the fault, deferred payments, a cascade that
never detects the fault; and incidents beside the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import analyze, degradation, load_run
from runformat.schemas import EVENT_SCHEMA, SAMPLE_SCHEMA
from runformat.verdicts import Verdict
from tests.synthetic import START_US, SyntheticSpec, write_run

S = 1_000_000
FAULT_START, FAULT_END = START_US + 200 * S, START_US + 230 * S
FAULT = {
    "id": 1,
    "text": "stripe-errors:1.0@200s+30s",
    "kind": "stripe-errors",
    "target": "stripe",
    "start_us": FAULT_START,
    "end_us": FAULT_END,
    "recovered_us": FAULT_END + S // 2,
    "status": "ended",
}
LIMITS = {
    "fault_detect_s": 10,
    "fault_error_rate": 0.05,
    "fault_p95_ms": 60_000,
    "fault_order_failure_rate": 0.05,
    "fault_recovery_s": 60,
}


def _events(path: Path, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(
        [
            {"persona": "buyer", "bytes": 100, "worker": "w9", "users": 40,
             "intended_latency_us": r["latency_us"], **r}
            for r in rows
        ],
        schema=EVENT_SCHEMA,
    )  # fmt: skip
    pq.write_table(table, path / "events" / "zz-fault.parquet")


def _breaker(path: Path, open_from_s: int, open_until_s: int) -> None:
    """The service's stripe breaker state at 1 Hz over the whole run: 2 (open) inside."""
    ts = np.arange(0, 430) * S + START_US
    value = np.where((ts >= START_US + open_from_s * S) & (ts < START_US + open_until_s * S), 2, 0)
    table = pa.table(
        {
            "ts_us": ts,
            "source": ["service"] * ts.size,
            "metric": ["marketplace_circuit_breaker_state"] * ts.size,
            "value": value.astype(float),
            "labels": [json.dumps({"breaker": "stripe"})] * ts.size,
        },
        schema=SAMPLE_SCHEMA,
    )
    pq.write_table(table, path / "samples" / "zz-breaker.parquet")


def _checkouts(t_from: int, t_to: int, outcome: str, status: int, error: str = "") -> list[dict]:
    return [
        {"ts_us": START_US + t * S + S // 2, "name": "/checkout", "method": "POST",
         "status": status, "latency_us": 300_000, "error_class": error, "outcome": outcome}
        for t in range(t_from, t_to)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def graceful(tmp_path_factory) -> Path:
    """Breaker open 204..249 s, one deferred checkout a second while it is open."""
    gate = {"users": 100, "target_users": 80, "criteria": {"p95_ms": 3000, **LIMITS}}
    path = write_run(tmp_path_factory.mktemp("g") / "run", SyntheticSpec(gate=gate, faults=[FAULT]))
    _events(path, _checkouts(205, 250, "payment_pending", 202))
    _breaker(path, 204, 250)
    return path


@pytest.fixture(scope="module")
def cascade(tmp_path_factory) -> Path:
    """No breaker (never opens); half the catalogue and every checkout fail meanwhile."""
    gate = {"users": 100, "target_users": 80, "criteria": {"p95_ms": 3000, **LIMITS}}
    path = write_run(tmp_path_factory.mktemp("c") / "run", SyntheticSpec(gate=gate, faults=[FAULT]))
    rows = _checkouts(200, 240, "payment_unavailable", 502, "5xx")
    rows += [
        {"ts_us": START_US + 200 * S + k * S // 4, "name": "/products", "method": "GET",
         "status": 500, "latency_us": 2_000_000, "error_class": "5xx", "outcome": ""}
        for k in range(160)
    ]  # fmt: skip
    _events(path, rows)
    _breaker(path, 0, 0)
    return path


def _results(run_dir: Path) -> dict[str, object]:
    result = analyze(load_run(run_dir))
    return {c.name: c for c in result.gate.criteria if c.name.startswith("fault_")}


def test_graceful_fault_is_measured_per_criterion(graceful):
    (m,) = degradation.measure(load_run(graceful))
    assert m.detect_s == pytest.approx(4.0)
    assert m.recovery_s == pytest.approx(19.5, abs=0.1) and not m.recovery_censored
    assert m.checkouts["deferred"] == 45 and m.checkouts["failed"] <= 2
    assert m.paths_n > 500 and m.paths_errors / m.paths_n < 0.02
    found = _results(graceful)
    assert set(found) == set(LIMITS)
    detect, recovery = found["fault_detect_s"], found["fault_recovery_s"]
    assert detect.status == "pass" and detect.ci == (3.0, 4.0)
    assert detect.description.startswith("stripe-errors:1.0@200s+30s (at ")
    assert recovery.status == "pass" and recovery.value == pytest.approx(19.5, abs=0.1)
    assert "45 deferred" in recovery.detail
    assert found["fault_error_rate"].status == "pass"
    assert all(c.basis == "measured" for c in found.values())


def test_cascade_fails_detection_and_errors(cascade):
    found = _results(cascade)
    detect = found["fault_detect_s"]
    assert detect.status == "fail" and detect.value == pytest.approx(30.5)  # to restoration
    assert "never opened" in detect.detail
    assert found["fault_error_rate"].status == "fail"
    assert found["fault_order_failure_rate"].status == "fail"
    assert found["fault_order_failure_rate"].value > 0.2  # 40 failed among ~140
    (m,) = degradation.measure(load_run(cascade))
    assert m.recovery_s == pytest.approx(9.25, abs=0.1)  # errors went on to 239.75 s


def test_a_run_without_faults_cannot_show_degradation(tmp_path):
    gate = {"users": 100, "target_users": 80, "criteria": {"fault_recovery_s": 60}}
    path = write_run(tmp_path / "run", SyntheticSpec(gate=gate))
    (only,) = analyze(load_run(path)).gate.criteria
    assert only.status == "insufficient data" and "no fault was injected" in only.detail


def test_comparison_table_lists_each_run_and_fault(graceful, cascade):
    text = degradation.table([load_run(graceful), load_run(cascade)])
    assert text.count("stripe-errors:1.0@200s+30s") == 2
    assert "45 deferred" in text and "never opened" in text


def _incident(path: Path, planned: bool) -> None:
    record = {
        "id": 1, "service": "redis", "start_us": START_US + 380 * S, "detected_us": 0,
        "end_us": None, "reason": "ConnectionError: refused", "planned": planned,
        "fault": "kill:redis@380s" if planned else None, "log_tail": ["", "oom killed"],
    }  # fmt: skip
    (path / "incidents.jsonl").write_text(json.dumps(record) + "\n")


def test_an_unplanned_incident_in_the_gate_window_makes_the_run_invalid(tmp_path):
    path = write_run(tmp_path / "run", SyntheticSpec())
    assert analyze(load_run(path)).verdict == Verdict.PASS  # the synthetic default passes
    _incident(path, planned=False)
    result = analyze(load_run(path))
    assert result.verdict == Verdict.INVALID and result.gate.exit_code == 3
    reason = next(r for r in result.gate.reasons if "incident" in r)
    assert "redis stopped answering at 380 s" in reason and "oom killed" in reason
    assert result.incidents and result.incidents[0]["service"] == "redis"


def test_a_planned_incident_does_not(tmp_path):
    path = write_run(tmp_path / "run", SyntheticSpec())
    _incident(path, planned=True)
    assert analyze(load_run(path)).verdict == Verdict.PASS


def test_fault_records_rewritten_as_they_change_read_as_one_window(tmp_path):
    path = write_run(tmp_path / "run", SyntheticSpec())
    started = {**FAULT, "end_us": None, "status": "active"}
    (path / "faults.jsonl").write_text(json.dumps(started) + "\n" + json.dumps(FAULT) + "\n")
    run = load_run(path)
    assert len(run.faults) == 1 and run.faults[0]["end_us"] == FAULT_END


def test_time_charts_draw_fault_windows_and_incidents(tmp_path):
    """Every time chart carries the fault windows and incidents (a fault still open and an
    incident that never ended are drawn to the chart's end)."""
    from reports import charts

    open_fault = {**FAULT, "id": 2, "end_us": None}
    path = write_run(tmp_path / "run", SyntheticSpec(faults=[FAULT, open_fault]))
    _incident(path, planned=False)
    result = analyze(load_run(path))
    drawn = charts.all_charts(result)
    for name in ("latency_over_time", "resources"):
        assert isinstance(drawn[name], bytes) and drawn[name][:4] == b"\x89PNG", drawn[name]
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    charts._shade(ax, result)
    labels = [t.get_text() for t in ax.texts]
    plt.close(fig)
    assert sum("stripe-errors stripe" in t for t in labels) == 2
    assert any("redis down" in t for t in labels)


def test_comparison_command_prints_the_table_and_rejects_no_runs(graceful, capsys):
    from analysis import degradation_cli

    assert degradation_cli.main([str(graceful)]) == 0
    assert "| stripe-errors:1.0@200s+30s (at 200 s) |" in capsys.readouterr().out
    assert degradation_cli.main([]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_a_checkout_the_next_fault_deferred_is_not_this_faults_degradation(tmp_path):
    """A checkout started just before the next fault and answered during it was deferred
    by that fault: it must not count as the previous fault still degrading (which
    censored its recovery in a real run: "follows only 0 s after the last sign")."""
    second = {**FAULT, "id": 2, "text": "stripe-errors:1.0@300s+20s",
              "start_us": START_US + 300 * S, "end_us": START_US + 320 * S,
              "recovered_us": START_US + 321 * S}  # fmt: skip
    gate = {"users": 100, "target_users": 80, "criteria": {"p95_ms": 3000, **LIMITS}}
    path = write_run(tmp_path / "run", SyntheticSpec(gate=gate, faults=[FAULT, second]))
    straddling = {"ts_us": START_US + 300 * S - 200_000, "name": "/checkout", "method": "POST",
                  "status": 202, "latency_us": 300_000, "error_class": "",
                  "outcome": "payment_pending"}  # fmt: skip
    _events(path, [*_checkouts(205, 250, "payment_pending", 202), straddling])
    _breaker(path, 204, 250)
    first = degradation.measure(load_run(path))[0]
    assert first.recovery_s == pytest.approx(19.5, abs=0.1) and not first.recovery_censored
