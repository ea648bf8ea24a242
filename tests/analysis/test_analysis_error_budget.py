"""The headroom's error budget is the gate's own error_rate: a gate that sets none (phase
0's empty gate) has no error budget row, rather than an invented 1 %."""

from __future__ import annotations

from analysis import analyze, load_run


def _budget_rows(result):
    return [c for c in result.headroom.constraints if c.name == "error budget"]


def test_the_budget_is_the_gates_error_rate(base_run_dir, tmp_path, with_manifest):
    gate = {"users": 100, "target_users": 80, "criteria": {"error_rate": 0.05}}
    result = analyze(load_run(with_manifest(base_run_dir, tmp_path / "budget", gate=gate)))
    (row,) = _budget_rows(result)
    assert row.limit == "error rate < 5.00%"


def test_a_gate_without_error_rate_has_no_budget(base_run_dir, tmp_path, with_manifest):
    gate = {"users": 100, "target_users": 80, "criteria": {"p95_ms": 3000}}
    result = analyze(load_run(with_manifest(base_run_dir, tmp_path / "nobudget", gate=gate)))
    assert _budget_rows(result) == []
    assert any(c.name == "latency SLO" for c in result.headroom.constraints)
