"""One real short run through ``loadgate ci`` on the local stack (36 s of load, tiny
fixtures): the run is made, judged against a baseline, and the job's files are there.

The run is the session's smoke run (tests/conftest.py ``smoke_run``), shared with
``tests/test_run.py``: it is made through ``loadgate ci`` so one run serves both."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cli_helpers import run_cli

pytestmark = [pytest.mark.load, pytest.mark.smoke]


def test_a_real_short_run_through_ci(smoke_run, tmp_path):
    out, summary, outputs = smoke_run.out, smoke_run.summary, smoke_run.github_output
    # 12 users cannot apply the phase-1 gate of 1,500: never a pass, neutral (exit 3)
    assert smoke_run.result.returncode == 3
    data = json.loads((out / "report" / "ci.json").read_text())
    assert data["outcome"] == "neutral"
    assert data["verdict"] in ("PROJECTED", "INVALID"), data
    assert data["regression"] is None and "missing or empty" in data["baseline_note"]
    assert any((out / "events").glob("*.parquet"))
    assert json.loads((out / "manifest.json").read_text())["status"] == "completed"
    assert f"gate: **{data['verdict']}**" in summary.read_text()
    assert "outcome=neutral" in outputs.read_text()

    # The same run judged again against a copy of itself: compared, no regression.
    # (Judged in a copy: the smoke run is shared and stays as loadgate ci left it.)
    again_dir = tmp_path / "tonight"
    shutil.copytree(out, again_dir)
    shutil.copytree(out, tmp_path / "baseline" / "last-night")
    again = run_cli(
        ["ci", "--run-dir", str(again_dir), "--baseline", str(tmp_path / "baseline")],
        tmp_path,
        timeout=300,
    )
    assert again.returncode == 3, again.stdout + again.stderr
    second = json.loads((again_dir / "report" / "ci.json").read_text())
    if data["verdict"] == "INVALID":  # an INVALID baseline is never compared with
        assert second["regression"] is None and "INVALID" in second["baseline_note"]
    else:
        assert second["regression"] is False and second["comparison"] == "no change", second
        assert (again_dir / "report" / "comparison.html").exists()
