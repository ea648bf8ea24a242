"""``loadgate report`` and ``loadgate compare`` on synthetic run directories:
the reports are written and the exit code is the verdict CI acts on."""

from __future__ import annotations

from dataclasses import replace

import pytest

from analysis.synthetic import SyntheticSpec, write_run
from tests.cli_helpers import run_cli

SMALL = SyntheticSpec(levels=(10, 20, 40, 60, 80, 100), hold_s=20, ramp_s=5, warmup_s=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    passing = write_run(root / "pass", SMALL)
    failing = write_run(
        root / "fail",
        replace(SMALL, gate={"users": 100, "target_users": 80, "criteria": {"p95_ms": 1}}),
    )
    slower = write_run(root / "slower", replace(SMALL, latency_scale=1.25, seed=2))
    return {"pass": passing, "fail": failing, "slower": slower, "root": root}


def test_report_pass_exits_0_and_writes_every_report(runs, tmp_path):
    result = run_cli(["report", str(runs["pass"]), "--out", str(tmp_path / "r")], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
    for name in ("report.html", "summary.md", "report.json", "junit.xml"):
        assert (tmp_path / "r" / name).stat().st_size > 0


def test_report_failed_gate_exits_1(runs, tmp_path):
    result = run_cli(["report", str(runs["fail"]), "--out", str(tmp_path / "r")], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout


def test_compare_flags_a_regression(runs, tmp_path):
    result = run_cli(
        ["compare", str(runs["slower"]), str(runs["pass"]), "--out", str(tmp_path / "c")], tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "verdict: regression" in result.stdout
    assert (tmp_path / "c" / "comparison.md").exists()


def test_compare_same_run_is_no_change(runs, tmp_path):
    result = run_cli(
        ["compare", str(runs["pass"]), str(runs["pass"]), "--out", str(tmp_path / "c")], tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_report_of_a_non_run_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli(["report", str(tmp_path / "empty")], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error:")
    missing = run_cli(["report", str(tmp_path / "nope")], tmp_path)
    assert missing.returncode == 2 and "no such run directory" in missing.stderr
