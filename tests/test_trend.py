"""``loadgate trend`` over four synthetic nights: ordered by the manifest's start time,
one regression marked (decided by analysis.compare against the previous point), an
INVALID night shown as such and kept off the line, HTML that renders offline."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgate.cli import app
from runformat.manifest import update_manifest
from tests.analysis.test_analysis_reports import (
    CHROMIUM,
    _console_errors,
    _open_in_chromium,
    _page_requests,
)
from tests.synthetic import SyntheticSpec, write_run

# A P95 limit far above every night's P95: the slower night still PASSes its gate, and
# only the comparison with the night before can tell it regressed.
SMALL = SyntheticSpec(
    levels=(25, 50, 100),
    hold_s=60,
    ramp_s=5,
    warmup_s=5,
    error_mix={"5xx": 0.001},
    cpu_rps_at_100=70.0,  # the service's CPU reaches the planning line: a binding constraint
    gate={"users": 100, "target_users": 80, "criteria": {"p95_ms": 20000, "error_rate": 0.05}},
)
NIGHTS = {  # name -> (spec, started_at): nights 1..4, oldest first
    "n1": (replace(SMALL, seed=11), "2026-11-01T02:23:00+00:00"),
    "n2": (replace(SMALL, seed=12), "2026-11-02T02:23:00+00:00"),
    "n3-invalid": (replace(SMALL, seed=13, generator_lag_ms=80.0), "2026-11-03T02:23:00+00:00"),
    "n4-slower": (replace(SMALL, seed=14, latency_scale=1.25), "2026-11-04T02:23:00+00:00"),
}


def run_cli(args: list[str], tmp: Path, timeout: float = 0):
    """``loadgate ARGS`` in this process (the CLI's imports cost seconds per process)."""
    result = CliRunner().invoke(app, args)
    result.returncode = result.exit_code
    return result


def assert_one_clear_error(result, *needles: str) -> None:
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.output
    assert all(n in lines[0] for n in needles), lines[0]
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nights")
    out = {}
    for name, (spec, started) in NIGHTS.items():
        # Directory names sort opposite to the start times: order must come from manifests.
        path = write_run(root / f"{9 - len(out)}-{name}", spec, run_id=name)
        update_manifest(path, started_at=started)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def trend(nights, tmp_path_factory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("trend")
    result = run_cli(["trend", *map(str, nights.values()), "--out", str(out)], out, timeout=300)
    assert result.returncode == 0, result.output
    data = json.loads((out / "trend.json").read_text())
    return out, data, (out / "trend.html").read_text()


def test_runs_are_ordered_by_start_time(trend):
    _, data, _ = trend
    assert [r["run_id"] for r in data["runs"]] == list(NIGHTS)


def test_the_regression_is_marked_against_the_previous_point(trend):
    _, data, html = trend
    runs = {r["run_id"]: r for r in data["runs"]}
    assert data["regressions"] == ["n4-slower"]
    slower = runs["n4-slower"]
    assert slower["regression"] is True and slower["comparison"] == "regression"
    assert slower["baseline_id"] == "n2"  # the INVALID night is not a point to compare with
    assert runs["n2"]["regression"] is False and runs["n2"]["baseline_id"] == "n1"
    assert runs["n1"]["comparison"] is None  # the first point has nothing before it
    marked = re.findall(r'data-run="([^"]+)" data-regression="true"', html)
    assert marked == ["n4-slower"]


def test_invalid_night_is_shown_as_such_not_on_the_line(trend):
    _, data, html = trend
    invalid = next(r for r in data["runs"] if r["run_id"] == "n3-invalid")
    assert invalid["verdict"] == "INVALID" and invalid["on_line"] is False
    assert invalid["comparison"] is None and invalid["regression"] is False
    assert "not on the trend line" in invalid["note"]
    assert 'data-run="n3-invalid" data-regression="false" data-on-line="false"' in html


def test_points_carry_values_with_intervals(trend):
    _, data, _ = trend
    for r in data["runs"]:
        if not r["on_line"]:
            continue
        assert r["step"] and r["load"] == 100
        lo, hi = r["p95_ci"]
        assert lo <= r["p95_ms"] <= hi
        lo, hi = r["throughput_ci"]
        assert lo <= r["throughput_rps"] <= hi
        assert r["error_rate_ci"][0] <= r["error_rate"] <= r["error_rate_ci"][1]
        assert r["binding"]
    slower, first = data["runs"][3], data["runs"][0]
    assert slower["p95_ms"] > 1.15 * first["p95_ms"]


def test_markdown_marks_the_regression(trend):
    out, _, _ = trend
    md = (out / "trend.md").read_text()
    assert "4 runs of phase 1, 3 on the trend line, 1 regression: n4-slower" in md
    assert md.count("❌ **REGRESSION vs n2**") == 1


def test_last_n_keeps_the_newest_and_compares_only_within(nights, tmp_path):
    result = run_cli(
        ["trend", *map(str, nights.values()), "--last", "2", "--out", str(tmp_path)], tmp_path
    )
    assert result.returncode == 0, result.output
    data = json.loads((tmp_path / "trend.json").read_text())
    assert [r["run_id"] for r in data["runs"]] == ["n3-invalid", "n4-slower"]
    assert data["regressions"] == []  # one point on the line: nothing to compare
    assert any("fewer than two runs" in n for n in data["notes"])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/test.sh installs it)")
def test_trend_html_renders_offline_in_chromium(trend, tmp_path):
    out, _, html = trend
    assert "http://" not in html and "https://" not in html and "<script" not in html
    shot = tmp_path / "trend.png"
    requests, stderr = _open_in_chromium(out / "trend.html", shot, tmp_path)
    assert _page_requests(requests) == [], requests
    assert _console_errors(stderr) == []
    assert shot.exists() and shot.stat().st_size > 20_000


def test_bad_input_is_one_error_line(nights, tmp_path):
    (tmp_path / "not-a-run").mkdir()
    result = run_cli(["trend", str(tmp_path / "not-a-run")], tmp_path)
    assert result.returncode == 2
    assert_one_clear_error(result, "no manifest.json", "loadgate run")
    result = run_cli(["trend", str(tmp_path / "missing")], tmp_path)
    assert result.returncode == 2
    assert_one_clear_error(result, "no such run directory")
    other = write_run(tmp_path / "phase2", replace(SMALL, phase=2, levels=(10,), hold_s=10))
    result = run_cli(["trend", str(nights["n1"]), str(other)], tmp_path)
    assert result.returncode == 2
    assert_one_clear_error(result, "different phases")
    result = run_cli(["trend", str(nights["n1"]), "--last", "0"], tmp_path)
    assert result.returncode == 2
    assert_one_clear_error(result, "--last 0")
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_cli(["trend", str(nights["n1"]), "--out", str(blocker / "sub")], tmp_path)
    assert result.returncode == 2
    assert_one_clear_error(result, "cannot write the trend")
