"""One real short run through ``loadgate ci`` on the local stack (36 s of load, tiny
fixtures): the run is made, judged against a baseline, and the job's files are there."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cli_helpers import run_cli
from tests.test_run import fast_config

pytestmark = pytest.mark.integration


def test_a_real_short_run_through_ci(tmp_path):
    out, summary = tmp_path / "runs" / "tonight", tmp_path / "summary.md"
    outputs = tmp_path / "github-output"
    args = ["--phase", "1", "--provider", "local", "--fixture-size", "tiny", "--workers", "1"]
    args += ["--users", "12", "--duration", "36s", "--config", str(fast_config(tmp_path))]
    result = run_cli(
        ["ci", *args, "--out", str(out), "--summary", str(summary), "--baseline", "nope"],
        tmp_path,
        timeout=420,
        GITHUB_OUTPUT=str(outputs),
    )
    # 12 users cannot apply the phase-1 gate of 1,500: never a pass, neutral (exit 3)
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((out / "report" / "ci.json").read_text())
    assert data["outcome"] == "neutral"
    assert data["verdict"] in ("PROJECTED", "INVALID"), data
    assert data["regression"] is None and "missing or empty" in data["baseline_note"]
    assert any((out / "events").glob("*.parquet"))
    assert json.loads((out / "manifest.json").read_text())["status"] == "completed"
    assert f"gate: **{data['verdict']}**" in summary.read_text()
    assert "outcome=neutral" in outputs.read_text()

    # The same run judged again against a copy of itself: compared, no regression.
    shutil.copytree(out, tmp_path / "baseline" / "last-night")
    again = run_cli(
        ["ci", "--run-dir", str(out), "--baseline", str(tmp_path / "baseline")],
        tmp_path,
        timeout=300,
    )
    assert again.returncode == 3, again.stdout + again.stderr
    second = json.loads((out / "report" / "ci.json").read_text())
    if data["verdict"] == "INVALID":  # an INVALID baseline is never compared with
        assert second["regression"] is None and "INVALID" in second["baseline_note"]
    else:
        assert second["regression"] is False and second["comparison"] == "no change", second
        assert (out / "report" / "comparison.html").exists()
