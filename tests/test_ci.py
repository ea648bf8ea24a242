"""``loadgate ci`` on synthetic run directories: the exit code CI acts on (pass, fail,
regression, neutral), the job summary, ci.json and $GITHUB_OUTPUT, baselines found or
missing, and bad input rejected with one error line before anything starts."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analysis import analyze, load_run
from loadgate.ci_cli import decide, find_baseline
from loadgate.cli import app
from runformat.manifest import update_manifest
from tests.synthetic import SyntheticSpec, write_run

# Few errors: a 18 s gate window of ~1,000 requests shows "< 1 %" with its interval.
SMALL = SyntheticSpec(
    levels=(10, 20, 40, 60, 80, 100), hold_s=20, ramp_s=5, warmup_s=2, error_mix={"5xx": 0.001}
)


def _gate(**criteria) -> dict:
    return {"users": 100, "target_users": 80, "criteria": criteria}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ci-runs")
    passing = write_run(root / "pass", SMALL)
    p95 = analyze(load_run(passing)).gate.criteria[0]
    assert p95.name == "p95_ms" and p95.ci is not None
    return {
        "pass": passing,
        "fail": write_run(root / "fail", replace(SMALL, gate=_gate(p95_ms=1, error_rate=0.01))),
        "slower": write_run(root / "slower", replace(SMALL, latency_scale=1.25, seed=2)),
        # a limit inside the P95's own interval: the interval straddles it
        "inconclusive": write_run(
            root / "inconclusive",
            replace(SMALL, gate=_gate(p95_ms=sum(p95.ci) / 2, error_rate=0.01)),
        ),
        # the generator's event loop lagged: the numbers describe the harness
        "invalid": write_run(root / "invalid", replace(SMALL, generator_lag_ms=80.0, seed=3)),
    }


def ci(args: list[str], tmp: Path, **env: str):
    """``loadgate ci ARGS`` in this process (the CLI's imports cost seconds per process
    on a shared machine); $GITHUB_* unset unless given."""
    env = {"GITHUB_STEP_SUMMARY": None, "GITHUB_OUTPUT": None, **env}
    result = CliRunner().invoke(app, ["ci", *args], env=env)
    result.returncode = result.exit_code  # as subprocess.run names it
    return result


def assert_one_clear_error(result, needle: str) -> None:
    lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert "Traceback" not in result.output


def ci_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "report" / "ci.json").read_text())


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_pass_without_baseline_exits_0_and_writes_the_summary(runs, tmp_path):
    run = copy(runs["pass"], tmp_path / "run")
    summary = tmp_path / "summary.md"
    result = ci(["--run-dir", str(run), "--summary", str(summary)], tmp_path)
    assert result.returncode == 0, result.output
    data = ci_json(run)
    assert data["outcome"] == "pass" and data["verdict"] == "PASS"
    assert data["regression"] is None and data["baseline"] is None
    assert "no baseline given" in data["baseline_note"]
    text = summary.read_text()
    assert text.startswith("## loadgate ci — ✅ pass (exit 0)")
    assert "## loadgate — phase 1 gate: **PASS**" in text  # the run's own summary follows
    for name in ("report.html", "summary.md", "report.json", "junit.xml"):
        assert (run / "report" / name).stat().st_size > 0


def test_failed_gate_exits_1(runs, tmp_path):
    run = copy(runs["fail"], tmp_path / "run")
    result = ci(["--run-dir", str(run), "--summary", str(tmp_path / "s.md")], tmp_path)
    assert result.returncode == 1, result.output
    assert ci_json(run)["outcome"] == "fail"
    assert "❌ fail (exit 1)" in (tmp_path / "s.md").read_text()


def test_regression_against_the_newest_baseline_under_a_directory_exits_1(runs, tmp_path):
    """--baseline DIR holding runs: the newest run of the phase is the baseline; the
    summary goes to $GITHUB_STEP_SUMMARY (appended) and the outputs to $GITHUB_OUTPUT."""
    run = copy(runs["slower"], tmp_path / "tonight")
    holder = tmp_path / "baseline"
    older = copy(runs["fail"], holder / "a" / "older")
    update_manifest(older, started_at="2026-10-01T00:00:00+00:00")
    newest = copy(runs["pass"], holder / "b" / "newest")
    step_summary, outputs = tmp_path / "step-summary.md", tmp_path / "outputs.txt"
    step_summary.write_text("earlier step\n")
    result = ci(
        ["--run-dir", str(run), "--baseline", str(holder)],
        tmp_path,
        GITHUB_STEP_SUMMARY=str(step_summary),
        GITHUB_OUTPUT=str(outputs),
    )
    assert result.returncode == 1, result.output
    data = ci_json(run)
    assert data["outcome"] == "regression" and data["regression"] is True
    assert data["verdict"] in ("PASS", "INCONCLUSIVE")  # the regression alone fails the job
    assert data["baseline"] == str(newest)
    assert data["baseline_candidate"] is False
    text = step_summary.read_text()
    assert text.startswith("earlier step\n")
    assert "regression vs baseline | **yes** (regression)" in text
    assert "## loadgate compare" in text
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert values["outcome"] == "regression" and values["exit_code"] == "1"
    assert values["regression"] == "true" and values["run_dir"] == str(run)


def test_same_distribution_against_a_baseline_passes_and_may_serve_next(runs, tmp_path):
    run = copy(runs["pass"], tmp_path / "tonight")
    base = copy(runs["pass"], tmp_path / "base")
    result = ci(["--run-dir", str(run), "--baseline", str(base)], tmp_path)
    assert result.returncode == 0, result.output
    data = ci_json(run)
    assert data["regression"] is False and data["comparison"] == "no change"
    assert data["baseline_candidate"] is True


@pytest.mark.parametrize("name", ["inconclusive", "invalid"])
def test_inconclusive_and_invalid_are_neutral(runs, tmp_path, name):
    run = copy(runs[name], tmp_path / "run")
    result = ci(["--run-dir", str(run), "--baseline", str(runs["pass"])], tmp_path)
    assert result.returncode == 3, result.output
    data = ci_json(run)
    assert data["outcome"] == "neutral" and data["verdict"] == name.upper()
    assert data["baseline_candidate"] is (name == "inconclusive")


def test_an_invalid_baseline_is_not_compared_with(runs, tmp_path):
    run = copy(runs["pass"], tmp_path / "run")
    result = ci(["--run-dir", str(run), "--baseline", str(runs["invalid"])], tmp_path)
    assert result.returncode == 0, result.output
    data = ci_json(run)
    assert data["regression"] is None and data["baseline"] is None
    assert "INVALID" in data["baseline_note"]


def test_missing_baseline_is_a_note_not_an_error(runs, tmp_path):
    run = copy(runs["pass"], tmp_path / "run")
    (tmp_path / "empty").mkdir()
    for where in (tmp_path / "nope", tmp_path / "empty"):
        result = ci(["--run-dir", str(run), "--baseline", str(where)], tmp_path)
        assert result.returncode == 0, result.output
        assert "missing or empty" in ci_json(run)["baseline_note"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "--phase N"),
        (["--phase", "1", "--run-dir", "."], "not both"),
        (["--run-dir", "/nonexistent/run"], "not a run directory"),
        (["--phase", "1", "--no-report"], "--no-report"),
        (["--phase", "1", "--users", "many"], "--users"),  # passed through, parsed by run
        (["--phase", "9", "--provider", "local"], "phase"),  # run's own config check
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, args, needle):
    result = ci([*args, "--out", str(tmp_path / "run")], tmp_path)
    assert result.returncode == 2, result.output
    assert_one_clear_error(result, needle)
    assert not (tmp_path / "run" / "events").exists()  # nothing ran


def test_decide_table():
    """The gate's code (runformat.verdicts via reports.exit_code) and the comparison; a
    regression only counts on a valid run."""
    assert decide(0, True, None) == ("pass", 0)
    assert decide(0, True, "no change") == ("pass", 0)
    assert decide(0, True, "improvement") == ("pass", 0)
    assert decide(0, True, "regression") == ("regression", 1)
    assert decide(1, True, "no change") == ("fail", 1)
    assert decide(1, True, "regression") == ("fail", 1)
    assert decide(3, True, None) == ("neutral", 3)  # INCONCLUSIVE, PROJECTED
    assert decide(3, True, "insufficient data") == ("neutral", 3)
    assert decide(3, True, "regression") == ("regression", 1)
    assert decide(3, False, "regression") == ("neutral", 3)  # INVALID: not counted


def test_find_baseline_picks_the_newest_run_of_the_phase(runs, tmp_path):
    holder = tmp_path / "holder"
    old = copy(runs["pass"], holder / "old")
    update_manifest(old, started_at="2026-10-01T00:00:00+00:00")
    new = copy(runs["pass"], holder / "new")
    other = copy(runs["pass"], holder / "other-phase")
    update_manifest(other, phase=2, started_at="2026-12-01T00:00:00+00:00")
    (holder / "junk").mkdir()
    (holder / "junk" / "manifest.json").write_text("{not json")
    found, note = find_baseline(holder, tmp_path / "tonight", 1)
    assert found == new and "of 2 under" in note
    assert find_baseline(holder, new, 1)[0] == old  # never the run itself
    assert find_baseline(holder, tmp_path / "x", 3)[0] is None
    assert find_baseline(None, tmp_path, 1) == (
        None,
        "no baseline given (--baseline DIR): nothing to compare with",
    )
