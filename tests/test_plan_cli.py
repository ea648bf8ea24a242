"""``loadgate plan``: the leadership page and plan.json from synthetic and real runs, bad
input as one error line, and the page in headless Chromium without network requests."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.analysis.test_analysis_demands import SPEC
from tests.analysis.test_analysis_reports import (
    CHROMIUM,
    _console_errors,
    _open_in_chromium,
    _page_requests,
)
from tests.cli_helpers import run_cli
from tests.synthetic import write_run

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("runs") / "plan-synthetic", SPEC)


@pytest.fixture(scope="module")
def planned(synthetic_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("plan")
    result = run_cli(["plan", str(synthetic_run), "--out", str(out)], tmp_path_factory.mktemp("s"))
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_plan_writes_page_markdown_and_json(planned):
    out, result = planned
    assert "M4 (150,000 users, projected)" in result.stdout
    assert "backtest" in result.stdout
    doc = json.loads((out / "plan.json").read_text())
    assert doc["schema"] == "loadgate.plan/1" and doc["basis"] == "projected"
    assert [m["milestone"] for m in doc["milestones"]] == ["M1", "M2", "M3", "M4"]
    for m in doc["milestones"]:
        assert m["basis"] == "projected" and m["verdict"]
        assert {r["resource"] for r in m["resources"]} >= {"service_cores", "stripe_rps"}
    assert doc["demands"]["basis"] == "measured" and doc["backtests"][0]["max_abs_error"] < 0.1
    assert doc["seed_calculate_capacity"][0]["max_users"] == 100
    generator = {g["milestone"]: g for g in doc["generator"]}
    assert list(generator) == ["M1", "M2", "M3", "M4"]
    assert 1 <= generator["M1"]["worker_cores"] <= generator["M4"]["worker_cores"]
    assert "M4: " in result.stdout and "load-generator worker cores" in result.stdout
    md = (out / "plan.md").read_text()
    assert md.splitlines()[0].startswith("## loadgate capacity plan — M1 **")
    assert "calculateCapacity" in md and "§7.1" in md and "Where it breaks" in md


def test_a_failed_measured_gate_is_said_beside_ready(tmp_path):
    """The run's own gate FAILS on its 2 cores; M1 is projected ready on more: the command
    says so on the milestone's line (issue 20 item 5)."""
    gate = {"users": 100, "target_users": 80, "criteria": {"p95_ms": 50, "error_rate": 0.01}}
    run = write_run(tmp_path / "failing", dataclasses.replace(SPEC, gate=gate))
    result = run_cli(["plan", str(run), "--phase", "1", "--out", str(tmp_path / "o")], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = " ".join(result.stdout.split())  # rich wraps long lines
    assert "M1 (1,500 users, projected): ready (assumes more cores than measured)" in out
    assert "own gate: FAIL" in out and "where the run had 2" in out
    doc = json.loads((tmp_path / "o" / "plan.json").read_text())
    assert doc["milestones"][0]["tags"] == ["assumes more cores than measured"]
    assert doc["reliable"] is True and doc["measured_gates"][0]["verdict"] == "FAIL"


def test_page_is_verdict_first_and_self_contained(planned):
    out, _ = planned
    html = (out / "plan.html").read_text()
    assert "<script" not in html.lower() and "url(" not in html and "@import" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert html.count('src="data:image/png;base64,') == 1
    assert html.index('class="verdict') < html.index("Required capacity vs users")
    assert "measured" in html and "projected" in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_page_in_headless_chromium(planned, tmp_path):
    out, _ = planned
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "plan.png"
    shot.unlink(missing_ok=True)
    requests, stderr = _open_in_chromium(out / "plan.html", shot, tmp_path)
    assert _page_requests(requests) == [], requests
    assert _console_errors(stderr) == []
    assert shot.exists() and shot.stat().st_size > 20_000


def test_missing_run_dir_is_one_error_line(tmp_path):
    result = run_cli(["plan", str(tmp_path / "nope")], tmp_path / "s")
    assert result.returncode == 2
    assert "no such run directory" in _one_error_line(result.stderr)


def test_run_without_steady_steps_is_one_error_line(synthetic_run, tmp_path):
    run = tmp_path / "ramps-only"
    shutil.copytree(synthetic_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    for stage in manifest["config"]["stages"]:
        stage["kind"] = "ramp"
    (run / "manifest.json").write_text(json.dumps(manifest))
    result = run_cli(["plan", str(run), "--out", str(tmp_path / "o")], tmp_path / "s")
    assert result.returncode == 2
    assert "steady-state" in _one_error_line(result.stderr)
    assert not (tmp_path / "o").exists()


def test_unknown_phase_and_bad_utilisation_are_one_error_line(synthetic_run, tmp_path):
    for args, words in (
        (["--phase", "7"], "--phase 7"),
        (["--utilisation", "1.5"], "planning utilisation"),
    ):
        result = run_cli(["plan", str(synthetic_run), *args, "--out", str(tmp_path)], tmp_path)
        assert result.returncode == 2
        assert words in _one_error_line(result.stderr)


# --------------------------------------------------------------------------- a real run


@pytest.mark.load
def test_real_run_stripe_projection_matches_checkouts_times_calls(phase2_run, tmp_path):
    """A short real phase-2 run (tests/conftest.py ``phase2_run``): the plan's Stripe
    projection equals the checkout rate per user x Stripe calls per checkout measured in
    the run, within the plan's interval."""
    from analysis import load_run
    from analysis.demands import read_records
    from analysis.steps import build_steps

    out = phase2_run.out
    assert json.loads((out / "manifest.json").read_text())["status"] == "completed"
    plan = run_cli(
        ["plan", str(out), "--phase", "2", "--config", str(phase2_run.plan_config),
         "--out", str(tmp_path / "p")],
        tmp_path / "state",
        timeout=300,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr[-3000:]
    doc = json.loads((tmp_path / "p" / "plan.json").read_text())
    (m2,) = doc["milestones"]
    stripe = next(r for r in m2["resources"] if r["resource"] == "stripe_rps")

    run = load_run(out)
    rec = read_records(out)
    s = run.samples
    calls_rows = s[
        (s["source"] == "service")
        & (s["metric"] == "marketplace_external_calls_total")
        & s["labels"].astype(str).str.contains('"service": "stripe"')
        & ~s["labels"].astype(str).str.contains("payouts")  # queued jobs, not checkouts
    ]
    per_tick = calls_rows.groupby("ts_us")["value"].sum().sort_index()
    checkouts = user_seconds = calls = tick_checkouts = 0.0
    is_checkout = np.asarray(rec.route == "POST /checkout")
    for st in build_steps(run):
        inside = (rec.ts_us >= st.start_us) & (rec.ts_us < st.end_us)
        if not inside.any():
            continue
        checkouts += float((inside & is_checkout).sum())
        user_seconds += float(np.median(rec.users[inside])) * st.duration_s
        ticks = per_tick[(per_tick.index >= st.start_us) & (per_tick.index < st.end_us)]
        if len(ticks) > 1:  # calls between the first and last sample inside the step
            calls += float(ticks.iloc[-1] - ticks.iloc[0])
            t0, t1 = ticks.index[0], ticks.index[-1]
            tick_checkouts += float(((rec.ts_us >= t0) & (rec.ts_us < t1) & is_checkout).sum())
    assert tick_checkouts > 0, "the run made no checkout: nothing to compare"
    per_checkout = calls / tick_checkouts
    per_user_second = m2["users"] / user_seconds * per_checkout
    expected = checkouts * per_user_second
    # The test's own estimate is a count of ~60 checkouts: its Poisson (Garwood) 95 %
    # interval is about ±25 %, as wide as the plan's.  The two estimates agree when their
    # intervals overlap; a plan off by 2x (calls counted twice, a wrong mix) does not.
    count_lo = stats.chi2.ppf(0.025, 2 * checkouts) / 2
    count_hi = stats.chi2.ppf(0.975, 2 * checkouts + 2) / 2
    lo, hi = stripe["load_ci"]
    assert count_lo * per_user_second <= hi and lo <= count_hi * per_user_second, (
        expected,
        (count_lo * per_user_second, count_hi * per_user_second),
        stripe,
        per_checkout,
    )
    assert per_checkout > 0  # checkouts paid by card call Stripe
